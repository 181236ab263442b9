//! Splitting the data of `COPY ... FROM STDIN` row by row over shards. The client's
//! CopyData messages cut rows anywhere, so input is buffered until a row is complete;
//! each row goes whole, bytes unchanged, to the shard its key hashes to. Row and field
//! boundaries follow PostgreSQL's own COPY reader (text: backslash escapes, the line
//! ending set by the first line; CSV: quotes and escapes; binary: length-prefixed
//! fields), so a row the router reads one way is never read another way by a shard.
//! Input PostgreSQL would reject either gets PostgreSQL's error here or is sent to a
//! shard that rejects it, which rolls the whole COPY back.

use crate::planner::sharding::{CopyFormat, CopyIn};
use bytes::{Bytes, BytesMut};
use orochi_sharding::{parse_binary, parse_text, shard_for, ShardKey};

const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Why the data cannot be loaded: a SQLSTATE and a message, as PostgreSQL would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub code: &'static str,
    pub message: String,
}

fn bad_format(message: impl Into<String>) -> SplitError {
    SplitError {
        code: "22P04",
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Nl,
    Cr,
    CrNl,
}

/// Where a text/CSV row scan stopped, to resume when more data comes.
#[derive(Debug, Default)]
struct Scan {
    pos: usize,
    in_quote: bool,
    last_was_esc: bool,
    /// Text format: where an unescaped `\.` starts in the row.
    marker: Option<usize>,
}

fn row_end(content: usize, total: usize, marker: Option<usize>) -> RowEnd {
    RowEnd {
        content,
        total,
        marker,
    }
}

/// A complete row at the front of the buffer.
struct RowEnd {
    /// Bytes of the row without its line ending.
    content: usize,
    /// Bytes including the line ending.
    total: usize,
    /// Text format: the row ends with the end-of-data marker `\.` (at this offset).
    marker: Option<usize>,
}

pub struct Splitter {
    spec: CopyIn,
    /// The key's field position; `None` = every row to every shard.
    key_at: Option<usize>,
    shards: usize,
    buf: BytesMut,
    scan: Scan,
    eol: Option<Eol>,
    header_left: bool,
    /// Rows read so far (for error messages).
    pub line: u64,
    /// The end-of-data marker or binary trailer was read: the rest is ignored.
    ended: bool,
    /// Bytes waiting to be sent, per shard.
    out: Vec<BytesMut>,
}

impl Splitter {
    pub fn new(spec: CopyIn, key_at: Option<usize>, shards: usize) -> Self {
        let header_left = spec.header || spec.format == CopyFormat::Binary;
        Splitter {
            spec,
            key_at,
            shards,
            buf: BytesMut::new(),
            scan: Scan::default(),
            eol: None,
            header_left,
            line: 0,
            ended: false,
            out: (0..shards).map(|_| BytesMut::new()).collect(),
        }
    }

    /// Takes one CopyData payload; complete rows move to their shards' buffers.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), SplitError> {
        if self.ended {
            return self.after_end(data);
        }
        self.buf.extend_from_slice(data);
        self.rows_ready(false)
    }

    /// Data after the end: ignored after text/CSV's `\.` (as PostgreSQL does), an error
    /// after the binary trailer (as PostgreSQL says).
    fn after_end(&self, data: &[u8]) -> Result<(), SplitError> {
        if self.spec.format == CopyFormat::Binary && !data.is_empty() {
            return Err(bad_format("received copy data after EOF marker"));
        }
        Ok(())
    }

    /// The client's CopyDone: the last row may lack its line ending.
    pub fn finish(&mut self) -> Result<(), SplitError> {
        if self.ended {
            return Ok(());
        }
        self.rows_ready(true)?;
        if !self.buf.is_empty() {
            return Err(bad_format(if self.spec.format == CopyFormat::Binary {
                "unexpected EOF in COPY data"
            } else {
                "unterminated CSV quoted field"
            }));
        }
        Ok(())
    }

    /// Buffered bytes for each shard holding at least `min` bytes, taken out.
    pub fn take(&mut self, min: usize) -> Vec<(usize, Bytes)> {
        let mut v = Vec::new();
        for (i, b) in self.out.iter_mut().enumerate() {
            if !b.is_empty() && b.len() >= min {
                v.push((i, b.split().freeze()));
            }
        }
        v
    }

    fn rows_ready(&mut self, at_end: bool) -> Result<(), SplitError> {
        if self.spec.format == CopyFormat::Binary {
            return self.binary_rows();
        }
        while !self.ended {
            let Some(end) = self.row_end(at_end)? else {
                return Ok(());
            };
            let row = self.buf.split_to(end.total).freeze();
            self.scan = Scan::default();
            self.line += 1;
            let content = &row[..end.content];
            if let Some(m) = end.marker {
                // `\.`: the end of the data; text before it on the line is a last row.
                if m + 2 != end.content {
                    return Err(bad_format("end-of-copy marker corrupt"));
                }
                self.ended = true;
                if m == 0 {
                    break;
                }
                let mut last = BytesMut::from(&content[..m]);
                last.extend_from_slice(&row[end.content..]);
                if end.content == end.total {
                    last.extend_from_slice(b"\n");
                }
                let last = last.freeze();
                let dest = self.text_dest(&last[..m])?;
                self.send(dest, &last);
                break;
            }
            if self.spec.format == CopyFormat::Csv && content == b"\\." {
                self.ended = true;
                break;
            }
            if std::mem::take(&mut self.header_left) {
                self.send(None, &row);
                continue;
            }
            let dest = self.text_dest(content)?;
            if end.content == end.total {
                // The last line without its ending: terminate it for the shard.
                let mut r = BytesMut::from(&row[..]);
                r.extend_from_slice(match self.eol {
                    Some(Eol::Cr) => b"\r",
                    Some(Eol::CrNl) => b"\r\n",
                    _ => b"\n",
                });
                self.send(dest, &r);
            } else {
                self.send(dest, &row);
            }
        }
        if self.ended {
            self.buf.clear();
        }
        Ok(())
    }

    /// Sends a row to its shard (`None` = every shard: a replicated table's rows, the
    /// header, the binary header and trailer).
    fn send(&mut self, dest: Option<usize>, row: &[u8]) {
        match dest {
            Some(s) => self.out[s].extend_from_slice(row),
            None => self.out.iter_mut().for_each(|o| o.extend_from_slice(row)),
        }
    }

    /// Finds the end of the row at the front of the buffer, as PostgreSQL's COPY reader
    /// does; `None` until it is complete.
    fn row_end(&mut self, at_end: bool) -> Result<Option<RowEnd>, SplitError> {
        let csv = self.spec.format == CopyFormat::Csv;
        let quote = self.spec.quote;
        // An escape equal to the quote is just the quote toggling twice.
        let escape = (self.spec.escape != quote).then_some(self.spec.escape);
        let b = &self.buf[..];
        let s = &mut self.scan;
        let mut i = s.pos;
        while i < b.len() {
            let c = b[i];
            if csv {
                if s.in_quote && Some(c) == escape {
                    s.last_was_esc = !s.last_was_esc;
                }
                if c == quote && !s.last_was_esc {
                    s.in_quote = !s.in_quote;
                }
                if Some(c) != escape {
                    s.last_was_esc = false;
                }
            }
            if c == b'\r' && !(csv && s.in_quote) {
                let next = b.get(i + 1).copied();
                match self.eol {
                    None | Some(Eol::CrNl) => match next {
                        None if !at_end => break,
                        Some(b'\n') => {
                            self.eol = Some(Eol::CrNl);
                            return Ok(Some(row_end(i, i + 2, s.marker)));
                        }
                        _ if self.eol == Some(Eol::CrNl) => {
                            return Err(bad_format("literal carriage return found in data"))
                        }
                        _ => {
                            self.eol = Some(Eol::Cr);
                            return Ok(Some(row_end(i, i + 1, s.marker)));
                        }
                    },
                    Some(Eol::Nl) => {
                        return Err(bad_format("literal carriage return found in data"))
                    }
                    Some(Eol::Cr) => return Ok(Some(row_end(i, i + 1, s.marker))),
                }
            }
            if c == b'\n' && !(csv && s.in_quote) {
                if matches!(self.eol, Some(Eol::Cr | Eol::CrNl)) {
                    return Err(bad_format("literal newline found in data"));
                }
                self.eol = Some(Eol::Nl);
                return Ok(Some(row_end(i, i + 1, s.marker)));
            }
            if c == b'\\' && !csv {
                match b.get(i + 1) {
                    None if !at_end => break,
                    None => {}
                    Some(b'.') => {
                        s.marker.get_or_insert(i);
                        i += 2;
                        continue;
                    }
                    Some(_) => {
                        // Backslash quotes the next byte, a line ending included.
                        i += 2;
                        continue;
                    }
                }
            }
            i += 1;
        }
        s.pos = i;
        if at_end && !b.is_empty() && i >= b.len() && !(csv && s.in_quote) {
            let n = b.len();
            return Ok(Some(row_end(n, n, s.marker)));
        }
        Ok(None)
    }

    /// The shard of a text or CSV row (`None` = every shard).
    fn text_dest(&self, row: &[u8]) -> Result<Option<usize>, SplitError> {
        let (Some(at), Some(key)) = (self.key_at, self.spec.key.as_ref()) else {
            return Ok(None);
        };
        let field = match self.spec.format {
            CopyFormat::Csv => csv_field(row, at, &self.spec),
            _ => text_field(row, at, &self.spec),
        };
        let Some(field) = field else {
            // Too few fields: any shard rejects the row ("missing data for column").
            return Ok(Some(0));
        };
        let value = match field {
            Field::Null if key.force_not_null => Some(self.spec.null.clone()),
            Field::Null => None,
            Field::Value(v) if key.force_null && v == self.spec.null => None,
            Field::Value(v) => Some(v),
        };
        let shard = match &value {
            None => shard_for(&ShardKey::Null, self.shards),
            Some(v) => parse_text(key.ty, v).and_then(|k| shard_for(&k, self.shards)),
        };
        shard.map(Some).map_err(|e| SplitError {
            code: e.sqlstate(),
            message: format!(
                "{e} (COPY data line {}, shard key column \"{}\")",
                self.line, key.column
            ),
        })
    }

    fn binary_rows(&mut self) -> Result<(), SplitError> {
        loop {
            if self.ended {
                self.buf.clear();
                return Ok(());
            }
            if std::mem::take(&mut self.header_left) {
                match binary_header_len(&self.buf)? {
                    Some(n) => {
                        let h = self.buf.split_to(n).freeze();
                        self.send(None, &h);
                        continue;
                    }
                    None => {
                        self.header_left = true;
                        return Ok(());
                    }
                }
            }
            let Some((len, key)) = binary_tuple(&self.buf, self.key_at)? else {
                return Ok(());
            };
            let tuple = self.buf.split_to(len).freeze();
            if tuple[..] == [0xff, 0xff] {
                // The trailer: every shard's data ends here.
                self.send(None, &tuple);
                self.ended = true;
                let rest = self.buf.split();
                return self.after_end(&rest);
            }
            self.line += 1;
            let dest = match (self.key_at, self.spec.key.as_ref()) {
                (Some(_), Some(k)) => {
                    let shard = match key.flatten() {
                        None => shard_for(&ShardKey::Null, self.shards),
                        Some(r) => parse_binary(k.ty, &tuple[r.0..r.1])
                            .and_then(|v| shard_for(&v, self.shards)),
                    };
                    Some(shard.map_err(|e| SplitError {
                        code: e.sqlstate(),
                        message: format!(
                            "{e} (COPY data row {}, shard key column \"{}\")",
                            self.line, k.column
                        ),
                    })?)
                }
                _ => None,
            };
            self.send(dest, &tuple);
        }
    }
}

enum Field {
    Null,
    Value(Vec<u8>),
}

/// Field `at` of a text-format row: NULL when the raw field is the NULL marker, else the
/// de-escaped value. `None`: the row has fewer fields.
fn text_field(row: &[u8], at: usize, spec: &CopyIn) -> Option<Field> {
    let mut n = 0;
    let mut start = 0;
    let mut i = 0;
    loop {
        let end_of_field = i >= row.len() || row[i] == spec.delimiter;
        if end_of_field {
            if n == at {
                let raw = &row[start..i];
                return Some(if raw == &spec.null[..] {
                    Field::Null
                } else {
                    Field::Value(unescape_text(raw))
                });
            }
            if i >= row.len() {
                return None;
            }
            n += 1;
            start = i + 1;
            i += 1;
            continue;
        }
        // A backslash as the row's last byte must not step past the end.
        i = (i + if row[i] == b'\\' { 2 } else { 1 }).min(row.len());
    }
}

/// PostgreSQL's text-format escapes: `\n`, `\t`, …, octal `\NNN`, hex `\xHH`, and any
/// other byte after a backslash as itself.
fn unescape_text(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = raw.get(i) else { break };
        i += 1;
        match e {
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            other => out.push(other),
        }
    }
    out
}

/// Field `at` of a CSV row: NULL when the unquoted raw field is the NULL marker, else the
/// value with quotes and escapes removed. `None`: fewer fields.
fn csv_field(row: &[u8], at: usize, spec: &CopyIn) -> Option<Field> {
    let (delim, quote, escape) = (spec.delimiter, spec.quote, spec.escape);
    let mut i = 0;
    let mut n = 0;
    loop {
        let start = i;
        let mut value = Vec::new();
        let mut saw_quote = false;
        let mut last = false;
        'field: loop {
            // Outside quotes.
            loop {
                if i >= row.len() {
                    last = true;
                    break 'field;
                }
                let c = row[i];
                i += 1;
                if c == delim {
                    break 'field;
                }
                if c == quote {
                    saw_quote = true;
                    break;
                }
                value.push(c);
            }
            // Inside quotes.
            loop {
                // An unterminated quote cannot reach here: the row scan keeps reading.
                let &c = row.get(i)?;
                i += 1;
                if c == escape {
                    if let Some(&nx) = row.get(i) {
                        if nx == quote || nx == escape {
                            value.push(nx);
                            i += 1;
                            continue;
                        }
                    }
                }
                if c == quote {
                    break;
                }
                value.push(c);
            }
        }
        if n == at {
            let raw_end = if last { i } else { i - 1 };
            let raw = &row[start..raw_end];
            return Some(if !saw_quote && raw == &spec.null[..] {
                Field::Null
            } else {
                Field::Value(value)
            });
        }
        if last {
            return None;
        }
        n += 1;
    }
}

/// Length of the binary COPY header once complete; an error if it is not one.
fn binary_header_len(b: &[u8]) -> Result<Option<usize>, SplitError> {
    let sig = BINARY_SIGNATURE.len();
    let have = b.len().min(sig);
    if b[..have] != BINARY_SIGNATURE[..have] {
        return Err(bad_format("COPY file signature not recognized"));
    }
    if b.len() < sig + 8 {
        return Ok(None);
    }
    let ext = u32::from_be_bytes([b[sig + 4], b[sig + 5], b[sig + 6], b[sig + 7]]) as usize;
    let n = sig + 8 + ext;
    Ok((b.len() >= n).then_some(n))
}

/// The byte length of the binary tuple at the front of `b` once complete, and where the
/// key field's bytes are (`Some(None)` = NULL key); the trailer is a 2-byte tuple.
#[allow(clippy::type_complexity)]
fn binary_tuple(
    b: &[u8],
    key_at: Option<usize>,
) -> Result<Option<(usize, Option<Option<(usize, usize)>>)>, SplitError> {
    if b.len() < 2 {
        return Ok(None);
    }
    let count = i16::from_be_bytes([b[0], b[1]]);
    if count == -1 {
        return Ok(Some((2, None)));
    }
    if count < 0 {
        return Err(bad_format(format!(
            "row field count is {count}, expected a positive number"
        )));
    }
    let mut p = 2;
    let mut key = None;
    for f in 0..count as usize {
        if b.len() < p + 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([b[p], b[p + 1], b[p + 2], b[p + 3]]);
        p += 4;
        if len < -1 {
            return Err(bad_format("invalid field size"));
        }
        let span = if len == -1 {
            None
        } else {
            let l = len as usize;
            if b.len() < p + l {
                return Ok(None);
            }
            p += l;
            Some((p - l, p))
        };
        if Some(f) == key_at {
            key = Some(span);
        }
    }
    if key_at.is_some() && key.is_none() {
        // Too few fields for the key: any shard rejects the row.
        key = Some(None);
    }
    Ok(Some((p, key)))
}

#[cfg(test)]
#[path = "copy_rows_tests.rs"]
mod tests;
