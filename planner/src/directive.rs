//! Routing directives a client gives the router itself (SPEC §3 manual override):
//! `SET orochi.shard = N`, PgCat's `SET SHARD TO 'N'`, `RESET orochi.shard`, and a leading
//! comment `/* orochi.shard = N */` for one statement. They are answered by the router
//! and never reach a server.

/// What a simple-query string asks of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `SET orochi.shard = N` / `SET SHARD TO N`: the session's shard from now on.
    SetShard(usize),
    /// `RESET orochi.shard` / `SET SHARD TO DEFAULT`.
    ResetShard,
    /// `SET orochi.role = 'primary' | 'replica' | 'any'` (PgCat: `SET SERVER ROLE TO …`);
    /// `None` = back to automatic read/write splitting.
    SetRole(Option<super::rw::Target>),
    /// A malformed directive: the message to send back.
    Invalid(String),
}

fn parse_role(v: &str) -> Directive {
    use super::rw::Target;
    match v.trim().trim_matches(|c| c == '\'' || c == '"').trim() {
        "primary" => Directive::SetRole(Some(Target::Primary)),
        "replica" => Directive::SetRole(Some(Target::Read)),
        "any" | "auto" | "default" => Directive::SetRole(None),
        other => Directive::Invalid(format!(
            "invalid role \"{other}\": expected primary, replica or any"
        )),
    }
}

fn parse_shard(v: &str) -> Result<usize, String> {
    let v = v.trim().trim_matches(|c| c == '\'' || c == '"').trim();
    v.parse::<usize>()
        .map_err(|_| format!("invalid shard number \"{v}\": expected a non-negative integer"))
}

/// The length of `b`'s leading white space, as PostgreSQL's scanner reads it (ASCII).
fn leading_space(b: &[u8]) -> usize {
    b.iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'))
        .unwrap_or(b.len())
}

/// Recognises a SET/RESET directive (the whole statement, optional trailing `;`).
pub fn directive(sql: &str) -> Option<Directive> {
    // Every statement passes here: anything but SET/RESET leaves at its first byte,
    // before the trims, the lower-cased copy and the word list (issue 16, CPU per
    // transaction). PostgreSQL's own whitespace is ASCII; a statement led by other
    // white space is not a directive (the server refuses it).
    let b = sql.as_bytes();
    let start = leading_space(b);
    let head = &b[start..b.len().min(start + 5)];
    if !(head
        .get(..3)
        .is_some_and(|h| h.eq_ignore_ascii_case(b"set"))
        || head.eq_ignore_ascii_case(b"reset"))
    {
        return None;
    }
    let s = sql.trim().trim_end_matches(';').trim();
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["reset", "orochi.role"] => return Some(Directive::SetRole(None)),
        ["set", "orochi.role", ..] => {
            let after = lower.split_once("orochi.role")?.1.trim_start();
            let v = after
                .strip_prefix('=')
                .or_else(|| after.strip_prefix("to "))
                .unwrap_or(after);
            return Some(parse_role(v));
        }
        ["set", "server", "role", "to", ..] => {
            return Some(parse_role(lower.split_once(" to ")?.1));
        }
        _ => {}
    }
    match words.as_slice() {
        ["reset", "orochi.shard"] | ["set", "shard", "to", "default"] => {
            Some(Directive::ResetShard)
        }
        ["set", "orochi.shard", ..] | ["set", "shard", "to", ..] => {
            let rest = if words[1] == "shard" {
                lower.split_once(" to ").map(|(_, r)| r)?
            } else {
                let after = lower.split_once("orochi.shard")?.1.trim_start();
                after
                    .strip_prefix('=')
                    .or_else(|| after.strip_prefix("to "))
                    .unwrap_or(after)
            };
            Some(match parse_shard(rest) {
                Ok(n) => Directive::SetShard(n),
                Err(e) => Directive::Invalid(e),
            })
        }
        _ => None,
    }
}

/// A leading `/* orochi.shard = N */` comment: the shard for this statement.
pub fn comment_shard(sql: &str) -> Option<Result<usize, String>> {
    let body = sql[leading_space(sql.as_bytes())..].strip_prefix("/*")?;
    let end = body.find("*/")?;
    let comment = body[..end].trim();
    let rest = comment.strip_prefix("orochi.shard")?.trim_start();
    let value = rest.strip_prefix('=')?;
    Some(parse_shard(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_white_space_is_postgresql_s() {
        assert_eq!(
            directive(" \t\r\n\x0b\x0cset orochi.shard = 1"),
            Some(Directive::SetShard(1))
        );
        // Not white space to PostgreSQL: the server refuses the statement.
        assert_eq!(directive("\u{a0}SET orochi.shard = 1"), None);
        assert_eq!(directive("SELECT 1"), None);
        assert_eq!(directive(""), None);
    }

    #[test]
    fn set_forms() {
        assert_eq!(
            directive("SET orochi.shard = 1"),
            Some(Directive::SetShard(1))
        );
        assert_eq!(
            directive("set orochi.shard to '2';"),
            Some(Directive::SetShard(2))
        );
        assert_eq!(directive("SET SHARD TO '3'"), Some(Directive::SetShard(3)));
        assert_eq!(directive("RESET orochi.shard"), Some(Directive::ResetShard));
        assert_eq!(
            directive("SET SHARD TO DEFAULT"),
            Some(Directive::ResetShard)
        );
        assert!(matches!(
            directive("SET orochi.shard = x"),
            Some(Directive::Invalid(_))
        ));
        assert_eq!(directive("SET search_path = a"), None);
        assert_eq!(directive("select 1"), None);
        use crate::rw::Target;
        assert_eq!(
            directive("SET orochi.role = 'primary'"),
            Some(Directive::SetRole(Some(Target::Primary)))
        );
        assert_eq!(
            directive("SET SERVER ROLE TO 'replica'"),
            Some(Directive::SetRole(Some(Target::Read)))
        );
        assert_eq!(
            directive("set orochi.role to any"),
            Some(Directive::SetRole(None))
        );
        assert_eq!(
            directive("RESET orochi.role"),
            Some(Directive::SetRole(None))
        );
        assert!(matches!(
            directive("SET orochi.role = 'leader'"),
            Some(Directive::Invalid(_))
        ));
    }

    #[test]
    fn comments() {
        assert_eq!(
            comment_shard("/* orochi.shard = 1 */ select 1"),
            Some(Ok(1))
        );
        assert_eq!(comment_shard("  /*orochi.shard=0*/select 1"), Some(Ok(0)));
        assert!(matches!(
            comment_shard("/* orochi.shard = -1 */ select"),
            Some(Err(_))
        ));
        assert_eq!(comment_shard("/* other */ select 1"), None);
        assert_eq!(comment_shard("select 1 /* orochi.shard = 1 */"), None);
    }
}
