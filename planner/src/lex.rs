//! Lexical helpers shared by the planner's fast paths (session effects, read/write
//! classification): cheap looks at statement text that decide whether the parser, or
//! the primary, is needed. ASCII case-insensitive; comments and leading `(` skipped.

/// Skips whitespace and comments; returns the first word, lower-cased (ASCII).
/// Block comments nest, as PostgreSQL's do (`/* /* */ still a comment */`); an
/// unterminated comment yields no keyword (the statement is then parsed, never guessed).
pub fn first_keyword(sql: &str) -> String {
    first_word(sql).to_ascii_lowercase()
}

/// [`first_keyword`] as written (no allocation): compare it with `eq_ignore_ascii_case`.
pub fn first_word(sql: &str) -> &str {
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
            match block_comment_end(b, i) {
                Some(end) => i = end,
                None => return "",
            }
        } else {
            break;
        }
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
        i += 1;
    }
    &sql[start..i]
}

/// The index just past the block comment that opens at `start` (`/*`), counting nested
/// comments; `None` when it never closes.
pub fn block_comment_end(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Case-insensitive (ASCII) substring test.
///
/// It runs on every statement (session tracking, the two-phase-commit guard), so it
/// jumps to the places where the needle's first byte occurs (`memchr`, vectorised) and
/// compares only there (issue 16, CPU per transaction).
pub fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    if h.len() < n.len() {
        return false;
    }
    let starts = &h[..=h.len() - n.len()];
    memchr::memchr2_iter(
        first.to_ascii_lowercase(),
        first.to_ascii_uppercase(),
        starts,
    )
    .any(|i| h[i..i + n.len()].eq_ignore_ascii_case(n))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_comments_nest_as_in_postgresql() {
        assert_eq!(first_keyword("/* a */ select 1"), "select");
        assert_eq!(
            first_keyword("/* /* */ select */ SET search_path = evil, public"),
            "set"
        );
        assert_eq!(
            first_keyword("/* /* /* */ */ x */ --c\n reset role"),
            "reset"
        );
        assert_eq!(first_keyword("/* /* */ select 1"), "");
        assert_eq!(first_keyword("/* unterminated"), "");
    }

    #[test]
    fn substrings_match_in_any_case_and_any_place() {
        for (hay, needle, found) in [
            ("SELECT set_config('a', 'b', false)", "set_config", true),
            ("select SET_CONFIG(1)", "set_config", true),
            ("pg_advisory_lock(1)", "advisory", true),
            ("temp", "temp", true),
            ("tem", "temp", false),
            ("", "temp", false),
            ("select 1 /* x */", "/*", true),
            ("select 1 / 2 * 3", "/*", false),
            ("aaab", "aab", true),
            ("xTeMp", "temp", true),
            ("select 1", "", true),
        ] {
            assert_eq!(contains_ci(hay, needle), found, "{hay:?} / {needle:?}");
        }
    }
}
