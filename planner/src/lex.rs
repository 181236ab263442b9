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

/// Several case-insensitive (ASCII) substring tests in one pass over the text.
///
/// Every statement is screened for a handful of words (session effects, the
/// two-phase-commit guard). One test per word meant one scan per word, each stopping
/// wherever the word's first letter occurs: nine scans a statement, ~7% of the router's
/// instructions. A screen looks at each pair of adjacent bytes once: two tables say
/// which words start with that first byte and go on with that second one. Where some
/// do, a third table asks the byte after; only the words left are compared there. In
/// ordinary SQL that is seldom: `SEL` is not `set_config`, `RE ` not `record_decision`
/// (before the third byte's table those two alone cost ~1.5% of a transaction; issue
/// 16, CPU per transaction). An SSE2 look at sixteen places at once was tried: with
/// nine words it costs as many instructions a byte as this (~9).
pub struct Screen {
    words: &'static [&'static str],
    /// Bit `k` of `first[b]`: word `k` starts with byte `b` (either letter case).
    first: [u16; 256],
    /// Bit `k` of `second[b]`: word `k`'s second byte is `b` (either letter case).
    second: [u16; 256],
    /// Bit `k` of `third[b]`: word `k`'s third byte is `b` (either letter case), or word
    /// `k` has two bytes (any byte follows).
    third: [u16; 256],
    /// Bit `k`: word `k` has two bytes (it may end the text).
    short: u16,
}

impl Screen {
    /// A screen for up to 16 words of at least two bytes. `const`, so a screen is a
    /// `static`.
    pub const fn new(words: &'static [&'static str]) -> Self {
        assert!(words.len() <= 16, "a screen holds at most 16 words");
        let mut first = [0u16; 256];
        let mut second = [0u16; 256];
        let mut third = [0u16; 256];
        let mut short = 0u16;
        let mut k = 0;
        while k < words.len() {
            let b = words[k].as_bytes();
            assert!(b.len() >= 2, "a screened word has two bytes or more");
            first[b[0].to_ascii_lowercase() as usize] |= 1 << k;
            first[b[0].to_ascii_uppercase() as usize] |= 1 << k;
            second[b[1].to_ascii_lowercase() as usize] |= 1 << k;
            second[b[1].to_ascii_uppercase() as usize] |= 1 << k;
            if b.len() == 2 {
                short |= 1 << k;
            } else {
                third[b[2].to_ascii_lowercase() as usize] |= 1 << k;
                third[b[2].to_ascii_uppercase() as usize] |= 1 << k;
            }
            k += 1;
        }
        let mut i = 0;
        while i < 256 {
            third[i] |= short;
            i += 1;
        }
        Screen {
            words,
            first,
            second,
            third,
            short,
        }
    }

    /// Which words occur in `hay`: bit `k` set when `words[k]` does.
    pub fn scan(&self, hay: &str) -> u16 {
        let h = hay.as_bytes();
        let mut found = 0u16;
        // Words not found yet: a word found is not looked for again.
        let mut left = u16::MAX;
        // The hot loop is two table reads per byte (9 instructions); the rest is out of
        // line. Two places a turn under one branch was tried: no fewer instructions.
        let Some(pairs) = h.len().checked_sub(1) else {
            return 0;
        };
        let (a, b) = (&h[..pairs], &h[1..]);
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            let m = self.first[x as usize] & self.second[y as usize] & left;
            if m != 0 {
                // The third byte's table (or the end of the text, where only a two-byte
                // word fits), then a comparison of the words left.
                let m = match h.get(i + 2) {
                    Some(&z) => m & self.third[z as usize],
                    None => m & self.short,
                };
                if m != 0 {
                    let f = self.compare(h, i, m);
                    found |= f;
                    left &= !f;
                }
            }
        }
        found
    }

    /// The words of `candidates` that occur at `h[i..]`, whose first bytes (two, three)
    /// the tables passed.
    #[inline(never)]
    fn compare(&self, h: &[u8], i: usize, mut candidates: u16) -> u16 {
        let mut found = 0;
        while candidates != 0 {
            let k = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let w = self.words[k].as_bytes();
            if h.len() - i >= w.len() && h[i + 2..i + w.len()].eq_ignore_ascii_case(&w[2..]) {
                found |= 1 << k;
            }
        }
        found
    }
}

/// Case-insensitive (ASCII) substring test.
///
/// It jumps to the places where the needle's first byte occurs (`memchr`, vectorised)
/// and compares only there. Words every statement is read for go through one [`Screen`]
/// instead (issue 16, CPU per transaction).
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
    fn a_screen_finds_what_one_test_per_word_finds() {
        static S: Screen = Screen::new(&["set_config", "temp", "/*", "u&", "hold", "ss"]);
        let texts = [
            "",
            "select 1",
            "SELECT SET_CONFIG('a','b',false)",
            "create TEMPORARY table x()",
            "select /* c */ 1",
            "select U&'\\0041'",
            "declare c cursor with HOLD for select 1",
            "tem",
            "set_confi",
            "xx set_config",
            "s",
            "SsS",
            "Ünïcode temp ✓",
        ];
        for t in texts {
            assert_eq!(S.scan(t), one_test_per_word(S.words, t), "{t:?}");
        }
    }

    /// Every word at every place of texts up to ~40 bytes, at the very end too (where no
    /// third byte follows), in either case, next to bytes that differ from its own by
    /// case folding's bit only (`_` and `\x7f`, `@` and `` ` ``).
    #[test]
    fn a_word_is_found_at_every_place_of_a_window() {
        let screen = &crate::session::STATEMENT_WORDS;
        for (k, w) in screen.words.iter().enumerate() {
            for before in 0..38 {
                for after in 0..3 {
                    for word in [w.to_string(), w.to_ascii_uppercase()] {
                        for fill in ["x", "\x7f", "`"] {
                            let t = format!("{}{word}{}", fill.repeat(before), fill.repeat(after));
                            let got = screen.scan(&t);
                            assert_ne!(got & 1 << k, 0, "{w:?} in {t:?}");
                            assert_eq!(got, one_test_per_word(screen.words, &t), "{t:?}");
                        }
                    }
                }
            }
        }
    }

    /// Generated texts: pieces of the screened words (in either case, cut anywhere),
    /// other bytes and multi-byte characters, glued at random; every screen must find
    /// exactly what one substring test per word finds.
    #[test]
    fn generated_texts_screen_as_substring_tests_do() {
        static S: Screen = Screen::new(&["set_config", "temp", "/*", "u&", "hold", "ss"]);
        let words: [&[&str]; 2] = [S.words, crate::session::STATEMENT_WORDS.words];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let extra = [
            "", " ", "_", "x", "é", "✓", "'", "*", "/", "&", "\n", "P", "v",
        ];
        for _ in 0..20_000 {
            let mut t = String::new();
            for _ in 0..next(8) {
                let list = words[next(2)];
                let w = list[next(list.len())];
                let (a, b) = (next(w.len() + 1), next(w.len() + 1));
                let piece = &w[a.min(b)..a.max(b)];
                t.push_str(&if next(2) == 0 {
                    piece.to_ascii_uppercase()
                } else {
                    piece.to_string()
                });
                t.push_str(extra[next(extra.len())]);
            }
            assert_eq!(S.scan(&t), one_test_per_word(S.words, &t), "{t:?}");
            let st = &crate::session::STATEMENT_WORDS;
            assert_eq!(st.scan(&t), one_test_per_word(st.words, &t), "{t:?}");
        }
    }

    /// What a screen of `words` must find in `t`: one substring test per word.
    fn one_test_per_word(words: &[&str], t: &str) -> u16 {
        let mut want = 0u16;
        for (k, w) in words.iter().enumerate() {
            if contains_ci(t, w) {
                want |= 1 << k;
            }
        }
        want
    }

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
