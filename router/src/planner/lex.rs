//! Lexical helpers shared by the planner's fast paths (session effects, read/write
//! classification): cheap looks at statement text that decide whether the parser, or
//! the primary, is needed. ASCII case-insensitive; comments and leading `(` skipped.

/// Skips whitespace and comments; returns the first word, lower-cased (ASCII).
pub fn first_keyword(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'(') {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            match sql[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return String::new(),
            }
        } else {
            break;
        }
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
        i += 1;
    }
    sql[start..i].to_ascii_lowercase()
}

/// Case-insensitive (ASCII) substring test.
pub fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// True when `word` occurs as a whole word (not inside an identifier).
pub fn contains_word_ci(hay: &str, word: &str) -> bool {
    let b = hay.as_bytes();
    let n = word.len();
    (0..b.len().saturating_sub(n - 1)).any(|i| {
        b[i..i + n].eq_ignore_ascii_case(word.as_bytes())
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'_')
            && (i + n == b.len() || !b[i + n].is_ascii_alphanumeric() && b[i + n] != b'_')
    })
}
