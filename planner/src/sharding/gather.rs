//! Gather, then answer on one shard: the fallback for a read the fan-out merge cannot
//! answer exactly (HAVING, `count(DISTINCT …)`, statistics, ordered aggregates, windows,
//! sublinks over distributed tables, set operations, …), as Citus's recursive planning
//! pulls intermediate results to one node.
//!
//! Every distributed table the statement reads is fetched from every shard (one
//! statement per shard, so one snapshot per shard), its rows in PostgreSQL's own row text
//! form (`x::text`). The statement is then rewritten with each reference to the table
//! replaced by `unnest('<those rows>'::table[]) AS alias` and run on one shard, where the
//! replicated tables are, so PostgreSQL itself evaluates the whole statement: types,
//! collations, NULLs and every function are exactly its own. Row text round-trips every
//! type exactly (it is the type's own output and input function).
//!
//! Only plain reads qualify (no locking clause, no `INTO`, no data-modifying CTE, no
//! `ONLY`/`TABLESAMPLE`, no CTE named like a distributed table), and only within a row and
//! byte budget: past it the statement is refused, never answered from part of the rows.

use super::schema::ShardingSchema;
use serde_json::Value;

/// At most this many rows are gathered for one statement (all tables, all shards).
pub const MAX_ROWS: usize = 100_000;
/// At most this many bytes of row text are gathered for one statement.
pub const MAX_BYTES: usize = 64 << 20;

/// One reference to a distributed table in the statement text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Site {
    /// Byte range of the table name as written (`public."T"`).
    start: usize,
    end: usize,
    /// Index into [`Gather::tables`].
    table: usize,
    /// ` AS name` to append when the reference had no alias (columns qualified by the
    /// table name must still resolve).
    alias: Option<String>,
}

/// What to fetch, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// Each distributed table as written in the statement (first spelling).
    pub tables: Vec<String>,
    sites: Vec<Site>,
}

impl Gather {
    /// The statement each shard runs: every table's rows as text, tagged by table.
    pub fn shard_sql(&self) -> String {
        let parts: Vec<String> = self
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT {i}, orochi_g::text FROM {t} AS orochi_g"))
            .collect();
        format!("{} LIMIT {}", parts.join(" UNION ALL "), MAX_ROWS + 1)
    }

    /// The statement with every reference replaced by its gathered rows
    /// (`rows[i]`: the row texts of table `i`, from all shards).
    pub fn rewrite(&self, sql: &str, rows: &[Vec<String>]) -> String {
        let literals: Vec<String> = self
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let rows = rows.get(i).map(Vec::as_slice).unwrap_or_default();
                format!("unnest({}::{t}[])", dollar_quote(&array_literal(rows)))
            })
            .collect();
        let mut sites = self.sites.clone();
        sites.sort_by_key(|s| s.start);
        let mut out =
            String::with_capacity(sql.len() + literals.iter().map(String::len).sum::<usize>());
        let mut at = 0;
        for s in &sites {
            out.push_str(&sql[at..s.start]);
            out.push_str(&literals[s.table]);
            if let Some(a) = &s.alias {
                out.push_str(" AS ");
                out.push_str(a);
            }
            at = s.end;
        }
        out.push_str(&sql[at..]);
        out
    }
}

/// The gather plan of a read, or why it has none.
pub fn plan(schema: &ShardingSchema, sql: &str) -> Result<Gather, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| e.to_string())?;
    let stmts = &parsed.protobuf.stmts;
    let [only] = stmts.as_slice() else {
        return Err("several statements".into());
    };
    let is_select = matches!(
        only.stmt.as_ref().and_then(|n| n.node.as_ref()),
        Some(pg_query::NodeEnum::SelectStmt(_))
    );
    if !is_select || crate::lex::first_keyword(sql) == "table" {
        return Err("not a plain SELECT".into());
    }
    let tree = serde_json::to_value(&parsed.protobuf).map_err(|e| e.to_string())?;
    let mut found = Found::default();
    walk(&tree, schema, &mut found);
    if let Some(why) = found.unsafe_node {
        return Err(why);
    }
    if found.ctes.iter().any(|c| schema.table("", c).is_some()) {
        return Err("a CTE named like a distributed table".into());
    }
    let mut g = Gather {
        tables: Vec::new(),
        sites: Vec::new(),
    };
    for rv in found.range_vars {
        if !rv.inh {
            return Err("ONLY on a distributed table".into());
        }
        let end = name_end(sql, rv.location).ok_or("a table name the router cannot delimit")?;
        let written = sql[rv.location..end].to_string();
        let table = match g.tables.iter().position(|t| *t == written) {
            Some(i) => i,
            None => {
                g.tables.push(written);
                g.tables.len() - 1
            }
        };
        g.sites.push(Site {
            start: rv.location,
            end,
            table,
            alias: (!rv.aliased).then(|| quote_ident(&rv.relname)),
        });
    }
    if g.sites.is_empty() {
        return Err("no distributed table".into());
    }
    Ok(g)
}

struct RangeVarAt {
    relname: String,
    location: usize,
    inh: bool,
    aliased: bool,
}

#[derive(Default)]
struct Found {
    range_vars: Vec<RangeVarAt>,
    ctes: Vec<String>,
    unsafe_node: Option<String>,
}

fn walk(v: &Value, schema: &ShardingSchema, f: &mut Found) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match k.as_str() {
                    "RangeVar" => range_var(x, schema, f),
                    "CommonTableExpr" => {
                        if let Some(n) = x.get("ctename").and_then(Value::as_str) {
                            f.ctes.push(n.to_string());
                        }
                    }
                    "locking_clause" if !x.as_array().is_some_and(Vec::is_empty) => {
                        f.unsafe_node = Some("a locking clause".into())
                    }
                    "into_clause" if !x.is_null() => f.unsafe_node = Some("SELECT INTO".into()),
                    "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                        f.unsafe_node = Some("a data-modifying CTE".into())
                    }
                    "RangeTableSample" => f.unsafe_node = Some("TABLESAMPLE".into()),
                    _ => {}
                }
                walk(x, schema, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, schema, f)),
        _ => {}
    }
}

fn range_var(rv: &Value, schema: &ShardingSchema, f: &mut Found) {
    let s = rv.get("schemaname").and_then(Value::as_str).unwrap_or("");
    let r = rv.get("relname").and_then(Value::as_str).unwrap_or("");
    if schema.table(s, r).is_none() || (s.is_empty() && f.ctes.iter().any(|c| c == r)) {
        return;
    }
    let Some(location) = rv.get("location").and_then(Value::as_u64) else {
        f.unsafe_node = Some("a table reference without a position".into());
        return;
    };
    f.range_vars.push(RangeVarAt {
        relname: r.to_string(),
        location: location as usize,
        inh: rv.get("inh").and_then(Value::as_bool).unwrap_or(false),
        aliased: rv.get("alias").is_some_and(|a| !a.is_null()),
    });
}

/// The end of a possibly qualified name written at `start`: identifiers (plain or
/// double-quoted) joined by dots, with whitespace around the dots.
fn name_end(sql: &str, start: usize) -> Option<usize> {
    let b = sql.as_bytes();
    let mut i = start;
    loop {
        i = ident_end(b, i)?;
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if b.get(j) != Some(&b'.') {
            return Some(i);
        }
        j += 1;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        i = j;
    }
}

fn ident_end(b: &[u8], start: usize) -> Option<usize> {
    match b.get(start)? {
        b'"' => {
            let mut i = start + 1;
            loop {
                match b.get(i)? {
                    b'"' if b.get(i + 1) == Some(&b'"') => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
        }
        c if c.is_ascii_alphabetic() || *c == b'_' || *c >= 0x80 => {
            let mut i = start + 1;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            Some(i)
        }
        _ => None,
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A PostgreSQL array literal of row texts: each element double-quoted, with `\` and
/// `"` escaped.
fn array_literal(rows: &[String]) -> String {
    let mut out = String::with_capacity(2 + rows.iter().map(|r| r.len() + 3).sum::<usize>());
    out.push('{');
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        if r.contains(['\\', '"']) {
            for c in r.chars() {
                if c == '\\' || c == '"' {
                    out.push('\\');
                }
                out.push(c);
            }
        } else {
            out.push_str(r);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// `text` as a dollar-quoted string constant whose tag does not occur in it, so the
/// server's `standard_conforming_strings` does not matter.
fn dollar_quote(text: &str) -> String {
    let mut n = 0u32;
    loop {
        let tag = format!("$orochi_g{n}$");
        if !text.contains(&tag) {
            return format!("{tag}{text}{tag}");
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharding::schema::DistributedTable;
    use orochi_config::KeyType;

    fn schema() -> ShardingSchema {
        let t = |name: &str| DistributedTable {
            name: name.into(),
            schema: None,
            column: "id".into(),
            ty: KeyType::BigInt,
        };
        ShardingSchema::new(2, vec![t("t"), t("u")])
    }

    #[test]
    fn references_become_the_gathered_rows() {
        let sql = "SELECT k FROM r WHERE k IN (SELECT v FROM t) AND EXISTS (SELECT 1 FROM public . \"t\" x, t WHERE x.id = t.id)";
        let g = plan(&schema(), sql).unwrap();
        assert_eq!(
            g.tables,
            vec!["t".to_string(), "public . \"t\"".to_string()]
        );
        let rows = vec![
            vec!["(1,\"a b\")".to_string(), "(2,x\\y)".to_string()],
            vec![],
        ];
        let out = g.rewrite(sql, &rows);
        assert_eq!(
            out,
            "SELECT k FROM r WHERE k IN (SELECT v FROM unnest($orochi_g0${\"(1,\\\"a b\\\")\",\"(2,x\\\\y)\"}$orochi_g0$::t[]) AS \"t\") AND EXISTS (SELECT 1 FROM unnest($orochi_g0${}$orochi_g0$::public . \"t\"[]) x, unnest($orochi_g0${\"(1,\\\"a b\\\")\",\"(2,x\\\\y)\"}$orochi_g0$::t[]) AS \"t\" WHERE x.id = t.id)"
        );
        assert!(g.shard_sql().starts_with(
            "SELECT 0, orochi_g::text FROM t AS orochi_g UNION ALL SELECT 1, orochi_g::text FROM public . \"t\" AS orochi_g LIMIT"
        ));
    }

    #[test]
    fn only_plain_reads_qualify() {
        for sql in [
            "SELECT * FROM t FOR UPDATE",
            "SELECT * INTO x FROM t",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT * FROM ONLY t",
            "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
            "WITH t AS (SELECT 1) SELECT * FROM t, u",
            "TABLE t",
            "SELECT 1; SELECT * FROM t",
            "SELECT * FROM r",
            "UPDATE t SET v = 1",
        ] {
            assert!(plan(&schema(), sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn dollar_tags_avoid_the_content() {
        assert_eq!(
            dollar_quote("a$orochi_g0$b"),
            "$orochi_g1$a$orochi_g0$b$orochi_g1$"
        );
    }
}
