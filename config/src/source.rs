//! A config file's text plus a line index, to turn byte spans into `line:column`.

use crate::error::Location;
use std::ops::Range;

pub(crate) struct SourceFile {
    pub name: String,
    pub text: String,
    /// Byte offset where each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, column + 1)
    }

    /// Location of the start of a span; the whole file when the span is unknown.
    pub fn locate(&self, span: Option<Range<usize>>) -> Location {
        match span {
            Some(span) => {
                let (line, column) = self.line_column(span.start);
                Location::File {
                    file: self.name.clone(),
                    line,
                    column,
                }
            }
            None => Location::WholeFile {
                file: self.name.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_line_and_char_column() {
        let src = SourceFile::new("f.toml", "ab\nçd = 1\n\nx");
        assert_eq!(src.line_column(0), (1, 1));
        assert_eq!(src.line_column(1), (1, 2));
        assert_eq!(src.line_column(3), (2, 1));
        // 'ç' is two bytes: the 'd' at byte 5 is the second character.
        assert_eq!(src.line_column(5), (2, 2));
        assert_eq!(src.line_column(11), (3, 1));
        assert_eq!(src.line_column(12), (4, 1));
        assert_eq!(src.line_column(999), (4, 2));
    }
}
