//! Messages a client sends after startup, decoded from and encoded to [`Frame`]s.
//!
//! The router decodes only what it must rewrite or inspect (Query, Parse, Bind, Describe,
//! Close, Execute); everything decodes so the codec can be tested by round trip.

use crate::util::{put_cstr, put_value, tagged, Reader};
use crate::{Frame, FrameRef, WireError};
use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    Query(String),
    Parse {
        name: String,
        query: String,
        param_types: Vec<u32>,
    },
    Bind {
        portal: String,
        statement: String,
        param_formats: Vec<i16>,
        params: Vec<Option<Bytes>>,
        result_formats: Vec<i16>,
    },
    /// `kind` is `b'S'` (statement) or `b'P'` (portal).
    Describe {
        kind: u8,
        name: String,
    },
    Execute {
        portal: String,
        max_rows: i32,
    },
    Close {
        kind: u8,
        name: String,
    },
    Sync,
    Flush,
    Terminate,
    CopyData(Bytes),
    CopyDone,
    CopyFail(String),
    /// PasswordMessage, SASLInitialResponse or SASLResponse: which one depends on the
    /// authentication exchange, so the body is kept raw (see [`crate::scram`]).
    Password(Bytes),
    /// Fast-path FunctionCall: forwarded as is.
    FunctionCall(Bytes),
}

/// A Query message for `sql`, written into `out` without building a
/// [`FrontendMessage`] (the router's own statements: no copy of the text, one
/// reservation).
pub fn encode_query(sql: &str, out: &mut BytesMut) {
    out.reserve(sql.len() + 6);
    tagged(out, b'Q', |b| put_cstr(b, sql));
}

/// A Parse of `query` as statement `name`, written into `out` without building a
/// [`FrontendMessage`]: a statement prepared on a server on demand (a sharded pool
/// sends the unnamed one before each Bind) copies its text once, into the server's
/// buffer, with one reservation (issue 16, CPU per statement).
pub fn encode_parse(name: &str, query: &str, param_types: &[u32], out: &mut BytesMut) {
    out.reserve(name.len() + query.len() + 4 * param_types.len() + 9);
    tagged(out, b'P', |b| {
        put_cstr(b, name);
        put_cstr(b, query);
        b.put_i16(param_types.len() as i16);
        for t in param_types {
            b.put_u32(*t);
        }
    });
}

/// The text of a simple-protocol Query, borrowed from its frame: what
/// [`FrontendMessage::decode`] would put in `Query`, without copying it (every statement
/// passes here; issue 16, CPU per transaction).
pub fn query_text(frame: &Frame) -> Result<&str, WireError> {
    query_text_of(frame.view())
}

/// [`query_text`] of a message read in place.
pub fn query_text_of(frame: FrameRef<'_>) -> Result<&str, WireError> {
    debug_assert_eq!(frame.tag, b'Q');
    Reader::new(frame.body, "frontend message").cstr()
}

/// The statement a Bind names, borrowed from its frame, once the whole body is checked
/// as [`FrontendMessage::decode`] checks it: what a Bind on the pass-through path needs,
/// without the allocations of its parameter lists (issue 16, CPU per statement).
pub fn bind_statement<'a>(frame: impl Into<FrameRef<'a>>) -> Result<&'a str, WireError> {
    let frame = frame.into();
    debug_assert_eq!(frame.tag, b'B');
    let mut r = Reader::new(frame.body, "frontend message");
    let (_, statement) = read_bind(&mut r, |_, _| {}, |_, _| {}, |_, _| {})?;
    r.finish()?;
    Ok(statement)
}

/// The statement name of a Bind that [`bind_statement`] has already accepted: only the
/// two names are read, not the lists after them (issue 16: a transaction's first Bind
/// is checked before the checkout, and its name is read after it).
pub fn bind_statement_name<'a>(frame: impl Into<FrameRef<'a>>) -> Result<&'a str, WireError> {
    let frame = frame.into();
    debug_assert_eq!(frame.tag, b'B');
    let mut r = Reader::new(frame.body, "frontend message");
    r.cstr()?;
    r.cstr()
}

/// The kind (`S` or `P`) and name of a Describe or Close, borrowed from its frame, once
/// the body is checked as [`FrontendMessage::decode`] checks it (issue 16: a portal's
/// Describe on the pass-through path copies nothing).
pub fn target_of<'a>(frame: impl Into<FrameRef<'a>>) -> Result<(u8, &'a str), WireError> {
    let frame = frame.into();
    debug_assert!(matches!(frame.tag, b'D' | b'C'));
    let mut r = Reader::new(frame.body, "frontend message");
    let kind = r.u8()?;
    if kind != b'S' && kind != b'P' {
        return Err(WireError::Invalid("Describe/Close kind"));
    }
    let name = r.cstr()?;
    r.finish()?;
    Ok((kind, name))
}

/// Checks an Execute as [`FrontendMessage::decode`] does, without copying its portal's
/// name (issue 16: every statement of the extended protocol passes here).
pub fn check_execute<'a>(frame: impl Into<FrameRef<'a>>) -> Result<(), WireError> {
    let frame = frame.into();
    debug_assert_eq!(frame.tag, b'E');
    let mut r = Reader::new(frame.body, "frontend message");
    r.cstr()?;
    r.i32()?;
    r.finish()
}

/// Is `frame` a Parse of exactly this name, text and parameter types? Compared in
/// place: a driver that parses the same unnamed statement before every execution
/// (libpq's extended mode) costs no copy of its text (issue 16).
pub fn parse_is<'a>(
    frame: impl Into<FrameRef<'a>>,
    name: &str,
    query: &str,
    param_types: &[u32],
) -> bool {
    let frame = frame.into();
    let b = frame.body;
    let text_end = name.len() + 1 + query.len() + 1;
    if frame.tag != b'P' || b.len() != text_end + 2 + 4 * param_types.len() {
        return false;
    }
    b[..name.len()] == *name.as_bytes()
        && b[name.len()] == 0
        && b[name.len() + 1..text_end - 1] == *query.as_bytes()
        && b[text_end - 1] == 0
        && b[text_end..text_end + 2] == (param_types.len() as u16).to_be_bytes()
        && b[text_end + 2..]
            .chunks_exact(4)
            .zip(param_types)
            .all(|(b, t)| *b == t.to_be_bytes())
}

/// Reads a Bind's fields in order, handing each list's items (with the list's length)
/// to its callback; returns the portal and statement names.
fn read_bind<'a>(
    r: &mut Reader<'a>,
    mut param_format: impl FnMut(usize, i16),
    mut param: impl FnMut(usize, Option<&'a [u8]>),
    mut result_format: impl FnMut(usize, i16),
) -> Result<(&'a str, &'a str), WireError> {
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let n = r.count(2)?;
    for _ in 0..n {
        param_format(n, r.i16()?);
    }
    let n = r.count(4)?;
    for _ in 0..n {
        param(n, r.value()?);
    }
    let n = r.count(2)?;
    for _ in 0..n {
        result_format(n, r.i16()?);
    }
    Ok((portal, statement))
}

/// Pushes an item of a list of `n`, allocating the whole list at its first.
fn push_sized<T>(v: &mut Vec<T>, n: usize, item: T) {
    if v.capacity() == 0 {
        v.reserve_exact(n);
    }
    v.push(item);
}

impl FrontendMessage {
    /// Decodes an owned frame; the values a Bind, a CopyData, a password or a
    /// FunctionCall carry are slices of its body (no copy).
    pub fn decode(frame: &Frame) -> Result<Self, WireError> {
        Self::decode_with(frame.view(), |v| frame.body.slice_ref(v))
    }

    /// Decodes a borrowed message; the values named above are copied out of it.
    pub fn decode_ref(frame: FrameRef<'_>) -> Result<Self, WireError> {
        Self::decode_with(frame, Bytes::copy_from_slice)
    }

    /// The decoder of both: `keep` makes the `Bytes` a decoded value holds of a part of
    /// `frame.body`.
    fn decode_with(frame: FrameRef<'_>, keep: impl Fn(&[u8]) -> Bytes) -> Result<Self, WireError> {
        let mut r = Reader::new(frame.body, "frontend message");
        let msg = match frame.tag {
            b'Q' => FrontendMessage::Query(r.cstr()?.to_string()),
            b'P' => {
                let name = r.cstr()?.to_string();
                let query = r.cstr()?.to_string();
                let n = r.count(4)?;
                let mut param_types = Vec::with_capacity(n);
                for _ in 0..n {
                    param_types.push(r.i32()? as u32);
                }
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                }
            }
            b'B' => {
                let (mut param_formats, mut params, mut result_formats) =
                    (Vec::new(), Vec::new(), Vec::new());
                let (portal, statement) = read_bind(
                    &mut r,
                    |n, f| push_sized(&mut param_formats, n, f),
                    |n, v| push_sized(&mut params, n, v.map(&keep)),
                    |n, f| push_sized(&mut result_formats, n, f),
                )?;
                FrontendMessage::Bind {
                    portal: portal.to_string(),
                    statement: statement.to_string(),
                    param_formats,
                    params,
                    result_formats,
                }
            }
            b'D' | b'C' => {
                let kind = r.u8()?;
                if kind != b'S' && kind != b'P' {
                    return Err(WireError::Invalid("Describe/Close kind"));
                }
                let name = r.cstr()?.to_string();
                if frame.tag == b'D' {
                    FrontendMessage::Describe { kind, name }
                } else {
                    FrontendMessage::Close { kind, name }
                }
            }
            b'E' => FrontendMessage::Execute {
                portal: r.cstr()?.to_string(),
                max_rows: r.i32()?,
            },
            b'S' => FrontendMessage::Sync,
            b'H' => FrontendMessage::Flush,
            b'X' => FrontendMessage::Terminate,
            b'd' => return Ok(FrontendMessage::CopyData(keep(frame.body))),
            b'c' => FrontendMessage::CopyDone,
            b'f' => FrontendMessage::CopyFail(r.cstr()?.to_string()),
            b'p' => return Ok(FrontendMessage::Password(keep(frame.body))),
            b'F' => return Ok(FrontendMessage::FunctionCall(keep(frame.body))),
            t => return Err(WireError::UnknownTag(t as char)),
        };
        r.finish()?;
        Ok(msg)
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            FrontendMessage::Query(q) => encode_query(q, out),
            FrontendMessage::Parse {
                name,
                query,
                param_types,
            } => encode_parse(name, query, param_types, out),
            FrontendMessage::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            } => tagged(out, b'B', |b| {
                put_cstr(b, portal);
                put_cstr(b, statement);
                b.put_i16(param_formats.len() as i16);
                for f in param_formats {
                    b.put_i16(*f);
                }
                b.put_i16(params.len() as i16);
                for p in params {
                    put_value(b, p);
                }
                b.put_i16(result_formats.len() as i16);
                for f in result_formats {
                    b.put_i16(*f);
                }
            }),
            FrontendMessage::Describe { kind, name } => tagged(out, b'D', |b| {
                b.put_u8(*kind);
                put_cstr(b, name);
            }),
            FrontendMessage::Execute { portal, max_rows } => tagged(out, b'E', |b| {
                put_cstr(b, portal);
                b.put_i32(*max_rows);
            }),
            FrontendMessage::Close { kind, name } => tagged(out, b'C', |b| {
                b.put_u8(*kind);
                put_cstr(b, name);
            }),
            FrontendMessage::Sync => tagged(out, b'S', |_| {}),
            FrontendMessage::Flush => tagged(out, b'H', |_| {}),
            FrontendMessage::Terminate => tagged(out, b'X', |_| {}),
            FrontendMessage::CopyData(d) => tagged(out, b'd', |b| b.put_slice(d)),
            FrontendMessage::CopyDone => tagged(out, b'c', |_| {}),
            FrontendMessage::CopyFail(m) => tagged(out, b'f', |b| put_cstr(b, m)),
            FrontendMessage::Password(d) => tagged(out, b'p', |b| b.put_slice(d)),
            FrontendMessage::FunctionCall(d) => tagged(out, b'F', |b| b.put_slice(d)),
        }
    }

    pub fn to_frame(&self) -> Frame {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        crate::decode_frame(&mut b, usize::MAX)
            .ok()
            .flatten()
            .expect("encoder produces one whole frame")
    }
}

/// The body of a SASLInitialResponse: mechanism and client-first message.
pub fn parse_sasl_initial(body: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let mut r = Reader::new(body, "SASLInitialResponse");
    let mech = r.cstr()?;
    let data = r.value()?.unwrap_or(&[]);
    r.finish()?;
    Ok((mech, data))
}

/// The body of a cleartext or md5 PasswordMessage.
pub fn parse_password(body: &[u8]) -> Result<&str, WireError> {
    let mut r = Reader::new(body, "PasswordMessage");
    let s = r.cstr()?;
    r.finish()?;
    Ok(s)
}

/// Encodes a SASLInitialResponse body.
pub fn sasl_initial(mechanism: &str, data: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    put_cstr(&mut b, mechanism);
    b.put_i32(data.len() as i32);
    b.put_slice(data);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message decodes to itself from an owned frame, and from the same bytes read
    /// in place at the front of a buffer (`peek_frame`, `FrameRef::at_front`: what the
    /// session loop reads), with more bytes behind it.
    fn round(m: FrontendMessage) {
        let f = m.to_frame();
        assert_eq!(FrontendMessage::decode(&f).unwrap(), m);
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        buf.extend_from_slice(b"S\0\0\0\x04");
        let (tag, total) = crate::peek_frame(&buf, crate::MAX_MESSAGE_LEN)
            .unwrap()
            .unwrap();
        let view = FrameRef::at_front(&buf, tag, total);
        assert_eq!(view, f.view());
        assert_eq!(view.to_frame(), f);
        assert_eq!(FrontendMessage::decode_ref(view).unwrap(), m);
    }

    #[test]
    fn every_message_round_trips() {
        round(FrontendMessage::Query("select 1".into()));
        round(FrontendMessage::Parse {
            name: "s1".into(),
            query: "select $1".into(),
            param_types: vec![23, 0],
        });
        round(FrontendMessage::Bind {
            portal: "".into(),
            statement: "s1".into(),
            param_formats: vec![1],
            params: vec![Some(Bytes::from_static(b"\0\0\0\x01")), None],
            result_formats: vec![0, 1],
        });
        round(FrontendMessage::Describe {
            kind: b'S',
            name: "s1".into(),
        });
        round(FrontendMessage::Execute {
            portal: "p".into(),
            max_rows: 10,
        });
        round(FrontendMessage::Close {
            kind: b'P',
            name: "".into(),
        });
        round(FrontendMessage::Sync);
        round(FrontendMessage::Flush);
        round(FrontendMessage::Terminate);
        round(FrontendMessage::CopyData(Bytes::from_static(b"1\t2\n")));
        round(FrontendMessage::CopyDone);
        round(FrontendMessage::CopyFail("nope".into()));
        round(FrontendMessage::Password(sasl_initial(
            "SCRAM-SHA-256",
            b"n,,n=,r=abc",
        )));
        round(FrontendMessage::FunctionCall(Bytes::from_static(
            b"\0\0\0\x01",
        )));
    }

    #[test]
    fn bind_statement_reads_the_name_and_checks_the_rest() {
        let bind = FrontendMessage::Bind {
            portal: "p".into(),
            statement: "s1".into(),
            param_formats: vec![1],
            params: vec![Some(Bytes::from_static(b"\0\0\0\x01")), None],
            result_formats: vec![0],
        }
        .to_frame();
        assert_eq!(bind_statement(&bind).unwrap(), "s1");
        // What decode refuses, bind_statement refuses: a short list, a trailing byte.
        let mut short = bind.body.to_vec();
        short.truncate(short.len() - 1);
        assert!(bind_statement(&Frame::new(b'B', short.clone())).is_err());
        assert!(FrontendMessage::decode(&Frame::new(b'B', short)).is_err());
        let mut long = bind.body.to_vec();
        long.push(0);
        assert!(bind_statement(&Frame::new(b'B', long)).is_err());
    }

    #[test]
    fn in_place_readers_accept_and_refuse_what_decode_does() {
        let describe = FrontendMessage::Describe {
            kind: b'P',
            name: "p1".into(),
        }
        .to_frame();
        assert_eq!(target_of(&describe).unwrap(), (b'P', "p1"));
        let close = FrontendMessage::Close {
            kind: b'S',
            name: String::new(),
        }
        .to_frame();
        assert_eq!(target_of(&close).unwrap(), (b'S', ""));
        let execute = FrontendMessage::Execute {
            portal: String::new(),
            max_rows: 0,
        }
        .to_frame();
        assert!(check_execute(&execute).is_ok());
        let bind = FrontendMessage::Bind {
            portal: "p".into(),
            statement: "s1".into(),
            param_formats: vec![1],
            params: vec![Some(vec![0, 0, 0, 7].into()), None],
            result_formats: vec![],
        }
        .to_frame();
        assert_eq!(bind_statement(&bind).unwrap(), "s1");
        // Once checked, the name alone is read, and it is the same name.
        assert_eq!(bind_statement_name(&bind).unwrap(), "s1");
        for (tag, body) in [
            (b'D', &b"Xname\0"[..]),
            (b'D', &b"Pname"[..]),
            (b'D', &b"Pname\0\0"[..]),
            (b'C', &b""[..]),
            (b'E', &b"p\0\0"[..]),
            (b'E', &b"p\0\0\0\0\0\0"[..]),
            (b'E', &b"\0\0\0\0"[..]),
        ] {
            let f = Frame::new(tag, body);
            let in_place = match tag {
                b'E' => check_execute(&f).is_err(),
                _ => target_of(&f).is_err(),
            };
            assert_eq!(
                in_place,
                FrontendMessage::decode(&f).is_err(),
                "{:?} {body:?}",
                tag as char
            );
        }
    }

    #[test]
    fn parse_is_compares_name_text_and_types() {
        let parse = |name: &str, query: &str, param_types: Vec<u32>| {
            FrontendMessage::Parse {
                name: name.into(),
                query: query.into(),
                param_types,
            }
            .to_frame()
        };
        let f = parse("", "select $1", vec![23]);
        assert!(parse_is(&f, "", "select $1", &[23]));
        assert!(!parse_is(&f, "", "select $1", &[20]));
        assert!(!parse_is(&f, "", "select $1", &[]));
        assert!(!parse_is(&f, "", "select $2", &[23]));
        assert!(!parse_is(&f, "s", "select $1", &[23]));
        // The same bytes split differently between name and text are not the same.
        let g = parse("a", "b", vec![]);
        assert!(!parse_is(&g, "", "a\0b", &[]));
        assert!(parse_is(&g, "a", "b", &[]));
        assert!(!parse_is(&Frame::new(b'Q', g.body.clone()), "a", "b", &[]));
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        for (tag, body) in [
            (b'Q', &b"no nul"[..]),
            (b'P', &b"s\0q\0\xff\xff"[..]),
            (b'B', &b"\0s\0\x7f\xff"[..]),
            (b'D', &b"Xname\0"[..]),
            (b'E', &b"p\0\0"[..]),
            (b'Z', &b""[..]),
        ] {
            assert!(FrontendMessage::decode(&Frame::new(tag, body)).is_err());
            assert!(FrontendMessage::decode_ref(FrameRef { tag, body }).is_err());
        }
    }

    #[test]
    fn sasl_initial_parses() {
        let body = sasl_initial("SCRAM-SHA-256", b"n,,n=,r=x");
        let (m, d) = parse_sasl_initial(&body).unwrap();
        assert_eq!((m, d), ("SCRAM-SHA-256", &b"n,,n=,r=x"[..]));
    }
}
