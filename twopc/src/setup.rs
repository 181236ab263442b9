//! The `orochi` schema objects on a shard (SPEC §4), and who may write them.
//!
//! Setup runs on first use from many connections and router instances at once, so every
//! step takes a transaction-level advisory lock ([`SETUP_LOCK_KEY`]) first: without it,
//! concurrent `CREATE SCHEMA IF NOT EXISTS` race and one fails with 23505 on
//! `pg_namespace_nspname_index`. Existence is read from the catalogs rather than with
//! `IF NOT EXISTS`, because those forms check the CREATE privilege before existence and
//! the server user has no CREATE on a schema that [`harden`] handed over.
//!
//! Decisions are written only through `orochi.record_decision` (insert-only: `commit`
//! fails on an existing row, `abort` does nothing on one) and deleted only through
//! `orochi.forget_decisions` (rows older than a floor). Both are `SECURITY DEFINER` with
//! a pinned `search_path`. [`harden`] then gives the schema, table and functions to a
//! role of their own ([`OWNER_ROLE`], NOLOGIN) and leaves the server users SELECT on the
//! table and EXECUTE on the functions: clients, who run as those users, can no longer
//! insert or update decision rows. It needs CREATEROLE (or superuser); without it the
//! table stays the server user's, as before, and the router logs a warning.

/// The schema objects of SPEC §4 (the table's text is the SPEC's; [`setup`] runs it).
pub const SETUP_SQL: &str = "CREATE SCHEMA IF NOT EXISTS orochi; CREATE TABLE IF NOT EXISTS orochi.twopc_decisions (gid text PRIMARY KEY, decision text NOT NULL CHECK (decision IN ('commit','abort')), decided_at timestamptz NOT NULL DEFAULT now());";

/// Key of the transaction-level advisory lock serializing setup in one database: the
/// ASCII bytes of `orochi2s` as a big-endian i64.
pub const SETUP_LOCK_KEY: i64 = i64::from_be_bytes(*b"orochi2s");

/// The role that owns the decisions table once [`harden`] could create it.
pub const OWNER_ROLE: &str = "orochi_twopc";

/// A decision row younger than this is never deleted, whatever age the caller asks for
/// (enforced inside `orochi.forget_decisions`, so a client calling it cannot delete the
/// decision of a transaction that is still being committed or recovered).
pub const FORGET_FLOOR_SECS: u32 = 900;

/// Setup, one implicit transaction: the lock, then each object created when missing.
pub fn setup() -> String {
    format!(
        r#"SELECT pg_advisory_xact_lock({SETUP_LOCK_KEY});
DO $orochi_setup$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'orochi') THEN
    CREATE SCHEMA orochi;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'orochi' AND c.relname = 'twopc_decisions') THEN
    CREATE TABLE orochi.twopc_decisions (gid text PRIMARY KEY, decision text NOT NULL CHECK (decision IN ('commit','abort')), decided_at timestamptz NOT NULL DEFAULT now());
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'orochi' AND p.proname = 'record_decision') THEN
    CREATE FUNCTION orochi.record_decision(p_gid text, p_decision text) RETURNS boolean
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
    BEGIN
      IF p_gid IS NULL OR NOT starts_with(p_gid, 'orochi_') THEN
        RAISE EXCEPTION 'not a two-phase commit gid: %', p_gid USING ERRCODE = '22023';
      END IF;
      IF p_decision = 'commit' THEN
        INSERT INTO orochi.twopc_decisions (gid, decision) VALUES (p_gid, 'commit');
        RETURN true;
      ELSIF p_decision = 'abort' THEN
        INSERT INTO orochi.twopc_decisions (gid, decision) VALUES (p_gid, 'abort')
          ON CONFLICT (gid) DO NOTHING;
        RETURN FOUND;
      END IF;
      RAISE EXCEPTION 'not a decision: %', p_decision USING ERRCODE = '22023';
    END $f$;
    REVOKE ALL ON FUNCTION orochi.record_decision(text, text) FROM PUBLIC;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'orochi' AND p.proname = 'forget_decisions') THEN
    CREATE FUNCTION orochi.forget_decisions(p_gids text[], p_min_age_secs float8) RETURNS bigint
      LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
      WITH d AS (DELETE FROM orochi.twopc_decisions WHERE gid = ANY (p_gids)
        AND decided_at < now() - make_interval(secs => greatest(p_min_age_secs, {FORGET_FLOOR_SECS}))
        RETURNING 1)
      SELECT count(*) FROM d
    $f$;
    REVOKE ALL ON FUNCTION orochi.forget_decisions(text[], float8) FROM PUBLIC;
  END IF;
END
$orochi_setup$;"#
    )
}

/// Whether the decisions table already belongs to [`OWNER_ROLE`] (`t`/`f`).
pub const IS_HARDENED: &str = "SELECT pg_catalog.pg_get_userbyid(c.relowner) = 'orochi_twopc' FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'orochi' AND c.relname = 'twopc_decisions'";

/// Hands the objects of [`setup`] to [`OWNER_ROLE`]; `grantees` (quoted identifiers; the
/// current user when empty) keep USAGE on the schema, SELECT on the table and EXECUTE on
/// the functions, nothing else. One transaction: a server that refuses a step (42501,
/// no CREATEROLE or no right to grant CREATE on the database) changes nothing.
pub fn harden(grantees: &[String]) -> String {
    let to = if grantees.is_empty() {
        "CURRENT_USER".to_string()
    } else {
        grantees.join(", ")
    };
    format!(
        r#"SELECT pg_advisory_xact_lock({SETUP_LOCK_KEY});
DO $orochi_harden$
BEGIN
  BEGIN
    CREATE ROLE {OWNER_ROLE} NOLOGIN;
  EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
  END;
  IF NOT pg_has_role(CURRENT_USER, '{OWNER_ROLE}', 'MEMBER') THEN
    GRANT {OWNER_ROLE} TO CURRENT_USER;
  END IF;
  EXECUTE format('GRANT CREATE ON DATABASE %I TO {OWNER_ROLE}', current_database());
  ALTER SCHEMA orochi OWNER TO {OWNER_ROLE};
  ALTER TABLE orochi.twopc_decisions OWNER TO {OWNER_ROLE};
  ALTER FUNCTION orochi.record_decision(text, text) OWNER TO {OWNER_ROLE};
  ALTER FUNCTION orochi.forget_decisions(text[], float8) OWNER TO {OWNER_ROLE};
  EXECUTE format('REVOKE CREATE ON DATABASE %I FROM {OWNER_ROLE}', current_database());
  REVOKE ALL ON SCHEMA orochi FROM PUBLIC;
  REVOKE ALL ON TABLE orochi.twopc_decisions FROM PUBLIC;
  REVOKE ALL ON FUNCTION orochi.record_decision(text, text) FROM PUBLIC;
  REVOKE ALL ON FUNCTION orochi.forget_decisions(text[], float8) FROM PUBLIC;
  GRANT USAGE ON SCHEMA orochi TO {to};
  GRANT SELECT ON TABLE orochi.twopc_decisions TO {to};
  GRANT EXECUTE ON FUNCTION orochi.record_decision(text, text),
    orochi.forget_decisions(text[], float8) TO {to};
  REVOKE {OWNER_ROLE} FROM CURRENT_USER;
END
$orochi_harden$;"#
    )
}

/// A role name as a quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_is_locked_and_harden_grants_only_to_the_server_users() {
        assert!(setup().starts_with("SELECT pg_advisory_xact_lock(8030603558299185779);"));
        assert!(SETUP_SQL.contains("gid text PRIMARY KEY"));
        let h = harden(&[ident("app"), ident("we\"ird")]);
        assert!(
            h.contains("GRANT SELECT ON TABLE orochi.twopc_decisions TO \"app\", \"we\"\"ird\";")
        );
        assert!(!h.contains("GRANT INSERT"));
        assert!(harden(&[]).contains("TO CURRENT_USER;"));
    }
}
