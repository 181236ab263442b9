//! Every statement the reshard runs on a shard, built in one place so that `plan` prints
//! exactly what `start`, `cutover` and `cleanup` execute.
//!
//! The row filter is the routing rule itself: a row of a distributed table belongs to
//! shard j of m when `satisfies_hash_partition(parent, m, j, key)` is true, where `parent`
//! is a hash-partitioned table of the key's type (SPEC §3). PostgreSQL 15 accepts that
//! built-in immutable function in a publication's `WHERE`; `tests/row_filter.rs` proves
//! on a real server that the filter keeps exactly the rows the router sends to j.

use crate::catalog::Table;
use crate::names::{hash_parent, Link};
pub use crate::quote::{ident, lit};

/// The publication filter keeping the rows of shard `remainder` of `modulus`.
pub fn row_filter(
    id: &str,
    type_oid: u32,
    modulus: usize,
    remainder: usize,
    column: &str,
) -> String {
    format!(
        "satisfies_hash_partition('{}'::regclass, {modulus}, {remainder}, {})",
        hash_parent(id, type_oid),
        ident(column)
    )
}

/// The `orochi` objects a reshard keeps on every shard: its state, and the hash parents
/// (empty, no partitions) the row filters name.
pub fn state_schema(type_oids: &[(u32, String)], id: &str, grantees: &[String]) -> String {
    let mut s = String::from(
        "CREATE SCHEMA IF NOT EXISTS orochi;
CREATE TABLE IF NOT EXISTS orochi.reshard (
    id text PRIMARY KEY,
    pool text NOT NULL,
    side text NOT NULL CHECK (side IN ('old', 'new')),
    phase text NOT NULL,
    spec jsonb NOT NULL,
    note text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS orochi.reshard_verify (
    id text NOT NULL,
    tbl text NOT NULL,
    last_key text,
    rows_done bigint NOT NULL DEFAULT 0,
    diffs text[] NOT NULL DEFAULT '{}',
    done boolean NOT NULL DEFAULT false,
    PRIMARY KEY (id, tbl));
",
    );
    for g in grantees {
        // Routers read the state (to name a reshard) and set up two-phase commit here.
        s.push_str(&format!(
            "GRANT USAGE, CREATE ON SCHEMA orochi TO {g};\nGRANT SELECT ON orochi.reshard TO {g};\n",
            g = ident(g)
        ));
    }
    for (oid, ty) in type_oids {
        s.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} (k {ty}) PARTITION BY HASH (k);\n",
            hash_parent(id, *oid)
        ));
    }
    s
}

/// DDL through the routers is refused while the reshard runs (0A000 naming it): DDL
/// would change one side and break replication. Event triggers fire for every session
/// except those with `session_replication_role = replica` (the tool's own). Temporary
/// objects, GRANT/REVOKE and the `orochi` schema (the routers' two-phase commit setup)
/// stay allowed: none of them is replicated.
pub fn ddl_guard(id: &str, pool: &str) -> String {
    let msg = format!(
        "DDL is refused on pool {pool} while reshard {id} runs (it would break the replication of rows to the new shards)"
    );
    let hint = "run it after `orochi-router reshard complete` or `orochi-router reshard cancel`";
    format!(
        "CREATE OR REPLACE FUNCTION orochi.rs_{id}_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF r.command_tag NOT IN ('GRANT', 'REVOKE')
       AND coalesce(r.schema_name, '') NOT LIKE 'pg\\_temp%' AND coalesce(r.schema_name, '') <> 'orochi'
       AND NOT (r.object_type = 'schema' AND r.object_identity = 'orochi') THEN
      RAISE EXCEPTION {m} USING ERRCODE = '0A000', HINT = {h};
    END IF;
  END LOOP;
END $f$;
CREATE OR REPLACE FUNCTION orochi.rs_{id}_drop() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
    IF r.original AND NOT r.is_temporary AND coalesce(r.schema_name, '') <> 'orochi' THEN
      RAISE EXCEPTION {m} USING ERRCODE = '0A000', HINT = {h};
    END IF;
  END LOOP;
END $f$;
DO $d$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'orochi_rs_{id}_ddl') THEN
    CREATE EVENT TRIGGER orochi_rs_{id}_ddl ON ddl_command_end EXECUTE FUNCTION orochi.rs_{id}_ddl();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'orochi_rs_{id}_drop') THEN
    CREATE EVENT TRIGGER orochi_rs_{id}_drop ON sql_drop EXECUTE FUNCTION orochi.rs_{id}_drop();
  END IF;
END $d$;
",
        m = lit(&msg),
        h = lit(hint)
    )
}

pub fn drop_ddl_guard(id: &str) -> String {
    format!(
        "DROP EVENT TRIGGER IF EXISTS orochi_rs_{id}_ddl;
DROP EVENT TRIGGER IF EXISTS orochi_rs_{id}_drop;
DROP FUNCTION IF EXISTS orochi.rs_{id}_ddl();
DROP FUNCTION IF EXISTS orochi.rs_{id}_drop();
"
    )
}

/// The fence: a statement trigger on every table refusing writes (25006, naming the
/// reshard). Replication apply workers run as `session_replication_role = replica`, so
/// they pass; a router with an old map does not. A partitioned table gets it on the root
/// and on every partition: a statement trigger of the root fires only for statements
/// naming the root, and PostgreSQL does not clone statement triggers to partitions.
pub fn fence(id: &str, pool: &str, tables: &[Table], serving: &str) -> String {
    let msg = format!(
        "pool {pool} moved by reshard {id}: this database no longer takes writes (the pool is served by its {serving} shards); this router has an old shard map"
    );
    let hint = "list this router in `orochi-router reshard cutover --router ...`, or restart it with the configuration of the shards that serve the pool";
    let mut s = format!(
        "CREATE OR REPLACE FUNCTION orochi.rs_{id}_fence() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION {m} USING ERRCODE = '25006', HINT = {h};
END $f$;
",
        m = lit(&msg),
        h = lit(hint)
    );
    // A trigger already there is left alone (the function it calls was just replaced):
    // dropping it would take the table's ACCESS EXCLUSIVE lock, and a rerun `start` would
    // then wait behind the table's initial copy, or deadlock with it when both sides
    // share a server (the copy's slot waits for every transaction of the server to end,
    // this one included). The trigger is looked up without locking the table.
    for q in tables.iter().flat_map(Table::relations) {
        let create = format!(
            "CREATE TRIGGER orochi_rs_{id}_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {q} FOR EACH STATEMENT EXECUTE FUNCTION orochi.rs_{id}_fence()"
        );
        s.push_str(&format!(
            "DO $orochi_fence$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = {name} AND tgrelid = {rel}::regclass) THEN
    EXECUTE {create};
  END IF;
END $orochi_fence$;
",
            name = lit(&format!("orochi_rs_{id}_fence")),
            rel = lit(&q),
            create = lit(&create)
        ));
    }
    s
}

pub fn unfence(id: &str, tables: &[Table]) -> String {
    let mut s = String::new();
    for q in tables.iter().flat_map(Table::relations) {
        s.push_str(&format!(
            "DROP TRIGGER IF EXISTS orochi_rs_{id}_fence ON {q};\n"
        ));
    }
    s
}

/// The publication of one link on its source: the distributed tables filtered to the
/// destination's hash remainder, and (from shard 0) the replicated tables whole. A
/// partitioned table is published as its root (`publish_via_partition_root`): the root's
/// row filter applies to the rows of every partition, and the subscriber's root routes
/// them into its own partitions.
pub fn publication(id: &str, link: &Link, tables: &[Table], dst_count: usize) -> String {
    let mut parts = Vec::new();
    let mut via_root = false;
    for t in tables {
        let listed = match &t.key {
            Some(k) if link.distributed => format!(
                "{} WHERE ({})",
                t.qname(),
                row_filter(id, k.type_oid, dst_count, link.dst(), &k.column)
            ),
            None if link.replicated => t.qname(),
            _ => continue,
        };
        parts.push(listed);
        via_root |= t.kind == 'p';
    }
    let list = if parts.is_empty() {
        // A publication needs no table; this one carries nothing (kept for uniform names).
        String::new()
    } else {
        format!(" FOR TABLE {}", parts.join(", "))
    };
    let root = if via_root {
        ", publish_via_partition_root = true"
    } else {
        ""
    };
    format!(
        "CREATE PUBLICATION {}{list} WITH (publish = 'insert, update, delete, truncate'{root})",
        ident(&link.name(id))
    )
}

/// The slot is created apart from the subscription: required when both are on one
/// server (CREATE SUBSCRIPTION would wait for itself), harmless elsewhere.
pub fn create_slot(name: &str) -> String {
    format!(
        "SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
        lit(name)
    )
}

/// Forward subscriptions copy the snapshot and start at once; reverse ones exist
/// disabled, without copy, until a cutover arms them.
pub fn subscription(name: &str, conninfo: &str, copy: bool, enabled: bool) -> String {
    format!(
        "CREATE SUBSCRIPTION {n} CONNECTION {c} PUBLICATION {n} WITH (create_slot = false, slot_name = {s}, copy_data = {copy}, enabled = {enabled})",
        n = ident(name),
        c = lit(conninfo),
        s = lit(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(lit("it's"), "'it''s'");
    }
}
