//! Quoting for the statements the reshard builds: below every module that writes SQL
//! (`catalog`, `conn`, `sql`, `verify`), so none of them imports another for it.

/// A quoted identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A quoted string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
