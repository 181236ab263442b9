//! `COPY ... FROM STDIN` on a sharded pool: the options that decide where one row ends
//! and which field holds the shard key, read from the statement with PostgreSQL's
//! defaults. Options that would let a row's key differ from what the router reads (a
//! foreign ENCODING, a DEFAULT marker) make the COPY single-shard only.

use super::route::{CopyFormat, CopyIn, CopyKey, KeyAt, ShardPlan};
use super::schema::ShardingSchema;
use pg_query::protobuf::{CopyStmt, Node};
use pg_query::NodeEnum;

/// Fills `plan.copy_in` (or says in `plan.merge` why the COPY cannot be split).
/// `replicated`: the target is a replicated table (every row to every shard).
pub fn plan_copy_in(schema: &ShardingSchema, c: &CopyStmt, plan: &mut ShardPlan, replicated: bool) {
    if !c.filename.is_empty() || c.is_program {
        plan.merge = Err("COPY FROM a server-side file or program on a sharded pool: each shard would read its own file; use COPY ... FROM STDIN (psql's \\copy)".into());
        return;
    }
    let Some(rv) = c.relation.as_ref() else {
        return;
    };
    let key = if replicated {
        None
    } else {
        let Some(t) = schema.table(&rv.schemaname, &rv.relname) else {
            return;
        };
        let table = &schema.tables[t];
        let at = if c.attlist.is_empty() {
            let name = match rv.schemaname.as_str() {
                "" => quote_ident(&rv.relname),
                s => format!("{}.{}", quote_ident(s), quote_ident(&rv.relname)),
            };
            KeyAt::Column { table: name }
        } else {
            match c
                .attlist
                .iter()
                .position(|n| super::ast::string(n) == Some(table.column.as_str()))
            {
                Some(i) => KeyAt::Field(i),
                None => {
                    plan.merge = Err(format!(
                        "COPY into the distributed table \"{}\" without its shard key column \"{}\" in the column list: the router must read each row's key",
                        table.name, table.column
                    ));
                    return;
                }
            }
        };
        Some(CopyKey {
            ty: table.ty,
            column: table.column.clone(),
            at,
            force_null: false,
            force_not_null: false,
        })
    };
    match options(&c.options, key) {
        Ok(spec) => plan.copy_in = Some(spec),
        Err(m) => plan.merge = Err(m),
    }
}

fn options(opts: &[Node], key: Option<CopyKey>) -> Result<CopyIn, String> {
    let mut format = CopyFormat::Text;
    let (mut delimiter, mut null, mut quote, mut escape) = (None, None, None, None);
    let mut header = false;
    let mut key = key;
    for o in opts {
        let Some(NodeEnum::DefElem(d)) = o.node.as_ref() else {
            continue;
        };
        let arg = d.arg.as_deref();
        let text = arg.and_then(value_text);
        match d.defname.as_str() {
            "format" => {
                format = match text.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("text") => CopyFormat::Text,
                    Some("csv") => CopyFormat::Csv,
                    Some("binary") => CopyFormat::Binary,
                    _ => return Err("COPY with an unknown FORMAT".into()),
                }
            }
            "delimiter" => delimiter = Some(one_byte(text, "DELIMITER")?),
            "quote" => quote = Some(one_byte(text, "QUOTE")?),
            "escape" => escape = Some(one_byte(text, "ESCAPE")?),
            "null" => null = Some(text.unwrap_or_default().into_bytes()),
            "header" => {
                header = match arg.map(|a| a.node.as_ref()) {
                    None => true,
                    Some(Some(NodeEnum::Integer(i))) => i.ival != 0,
                    Some(Some(NodeEnum::Boolean(b))) => b.boolval,
                    _ => !matches!(
                        text.as_deref().map(str::to_ascii_lowercase).as_deref(),
                        Some("false" | "off" | "0")
                    ),
                }
            }
            "force_null" | "force_not_null" => {
                if let Some(k) = key.as_mut() {
                    let named = match arg.and_then(|a| a.node.as_ref()) {
                        Some(NodeEnum::AStar(_)) => true,
                        Some(NodeEnum::List(l)) => l
                            .items
                            .iter()
                            .any(|n| super::ast::string(n) == Some(k.column.as_str())),
                        _ => false,
                    };
                    if named && d.defname == "force_null" {
                        k.force_null = true;
                    } else if named {
                        k.force_not_null = true;
                    }
                }
            }
            "encoding" => {
                let e = text.unwrap_or_default().to_ascii_lowercase().replace(['-', '_'], "");
                if e != "utf8" {
                    return Err("COPY with an ENCODING other than UTF8 across shards: the router reads the key in UTF-8; convert the data, or load each shard with SET orochi.shard = N".into());
                }
            }
            "default" => {
                return Err("COPY with a DEFAULT marker across shards: a defaulted key has no value the router can see; load each shard with SET orochi.shard = N".into())
            }
            _ => {}
        }
    }
    let csv = format == CopyFormat::Csv;
    let quote = quote.unwrap_or(b'"');
    Ok(CopyIn {
        format,
        delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
        quote,
        escape: escape.unwrap_or(quote),
        null: null.unwrap_or_else(|| if csv { vec![] } else { b"\\N".to_vec() }),
        header,
        key,
    })
}

fn value_text(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        NodeEnum::Integer(i) => Some(i.ival.to_string()),
        NodeEnum::Boolean(b) => Some(b.boolval.to_string()),
        NodeEnum::Float(f) => Some(f.fval.clone()),
        _ => None,
    }
}

fn one_byte(v: Option<String>, what: &str) -> Result<u8, String> {
    match v.as_deref().map(str::as_bytes) {
        Some([b]) if b.is_ascii() => Ok(*b),
        _ => Err(format!("COPY {what} must be a single one-byte character")),
    }
}

/// An identifier as SQL, quoted when it is not a plain lower-case name.
fn quote_ident(s: &str) -> String {
    let plain = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}
