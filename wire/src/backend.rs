//! Messages a server sends (and the router sends to its clients as a server).

use crate::util::{put_cstr, put_value, tagged, Reader};
use crate::{ErrorFields, Frame, WireError};
use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    Ok,
    CleartextPassword,
    Md5Password { salt: [u8; 4] },
    Sasl { mechanisms: Vec<String> },
    SaslContinue(Bytes),
    SaslFinal(Bytes),
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    pub name: String,
    pub table_oid: u32,
    pub column: i16,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
    pub format: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    Authentication(Authentication),
    ParameterStatus {
        name: String,
        value: String,
    },
    BackendKeyData {
        process_id: i32,
        secret_key: i32,
    },
    /// Transaction status: `b'I'` idle, `b'T'` in transaction, `b'E'` failed transaction.
    ReadyForQuery(u8),
    ErrorResponse(ErrorFields),
    NoticeResponse(ErrorFields),
    CommandComplete(String),
    RowDescription(Vec<FieldDescription>),
    DataRow(Vec<Option<Bytes>>),
    ParameterDescription(Vec<u32>),
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    PortalSuspended,
    EmptyQueryResponse,
    CopyInResponse {
        format: i8,
        columns: Vec<i16>,
    },
    CopyOutResponse {
        format: i8,
        columns: Vec<i16>,
    },
    CopyData(Bytes),
    CopyDone,
    NotificationResponse {
        process_id: i32,
        channel: String,
        payload: String,
    },
    NegotiateProtocolVersion {
        minor: i32,
        unrecognized: Vec<String>,
    },
}

impl BackendMessage {
    pub fn decode(frame: &Frame) -> Result<Self, WireError> {
        let body = &frame.body;
        let mut r = Reader::new(body, "backend message");
        let msg = match frame.tag {
            b'R' => {
                let code = r.i32()?;
                BackendMessage::Authentication(match code {
                    0 => Authentication::Ok,
                    3 => Authentication::CleartextPassword,
                    5 => {
                        let s = r.take(4)?;
                        Authentication::Md5Password {
                            salt: [s[0], s[1], s[2], s[3]],
                        }
                    }
                    10 => {
                        let mut mechanisms = Vec::new();
                        loop {
                            let m = r.cstr()?;
                            if m.is_empty() {
                                break;
                            }
                            mechanisms.push(m.to_string());
                        }
                        Authentication::Sasl { mechanisms }
                    }
                    11 => Authentication::SaslContinue(body.slice_ref(r.rest())),
                    12 => Authentication::SaslFinal(body.slice_ref(r.rest())),
                    _ => return Err(WireError::Invalid("authentication request")),
                })
            }
            b'S' => BackendMessage::ParameterStatus {
                name: r.cstr()?.to_string(),
                value: r.cstr()?.to_string(),
            },
            b'K' => BackendMessage::BackendKeyData {
                process_id: r.i32()?,
                secret_key: r.i32()?,
            },
            b'Z' => BackendMessage::ReadyForQuery(r.u8()?),
            b'E' => return Ok(BackendMessage::ErrorResponse(ErrorFields::decode(body)?)),
            b'N' => return Ok(BackendMessage::NoticeResponse(ErrorFields::decode(body)?)),
            b'C' => BackendMessage::CommandComplete(r.cstr()?.to_string()),
            b'T' => {
                let n = r.count(19)?;
                let mut fields = Vec::with_capacity(n);
                for _ in 0..n {
                    fields.push(FieldDescription {
                        name: r.cstr()?.to_string(),
                        table_oid: r.i32()? as u32,
                        column: r.i16()?,
                        type_oid: r.i32()? as u32,
                        type_size: r.i16()?,
                        type_modifier: r.i32()?,
                        format: r.i16()?,
                    });
                }
                BackendMessage::RowDescription(fields)
            }
            b'D' => {
                let n = r.count(4)?;
                let mut cols = Vec::with_capacity(n);
                for _ in 0..n {
                    cols.push(r.value()?.map(|v| body.slice_ref(v)));
                }
                BackendMessage::DataRow(cols)
            }
            b't' => {
                let n = r.count(4)?;
                let mut types = Vec::with_capacity(n);
                for _ in 0..n {
                    types.push(r.i32()? as u32);
                }
                BackendMessage::ParameterDescription(types)
            }
            b'1' => BackendMessage::ParseComplete,
            b'2' => BackendMessage::BindComplete,
            b'3' => BackendMessage::CloseComplete,
            b'n' => BackendMessage::NoData,
            b's' => BackendMessage::PortalSuspended,
            b'I' => BackendMessage::EmptyQueryResponse,
            b'G' | b'H' => {
                let format = r.u8()? as i8;
                let n = r.count(2)?;
                let mut columns = Vec::with_capacity(n);
                for _ in 0..n {
                    columns.push(r.i16()?);
                }
                if frame.tag == b'G' {
                    BackendMessage::CopyInResponse { format, columns }
                } else {
                    BackendMessage::CopyOutResponse { format, columns }
                }
            }
            b'd' => return Ok(BackendMessage::CopyData(body.clone())),
            b'c' => BackendMessage::CopyDone,
            b'A' => BackendMessage::NotificationResponse {
                process_id: r.i32()?,
                channel: r.cstr()?.to_string(),
                payload: r.cstr()?.to_string(),
            },
            b'v' => {
                let minor = r.i32()?;
                let n = r.i32()?;
                if n < 0 || n as usize > r.remaining() {
                    return Err(WireError::Invalid("NegotiateProtocolVersion"));
                }
                let mut unrecognized = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    unrecognized.push(r.cstr()?.to_string());
                }
                BackendMessage::NegotiateProtocolVersion {
                    minor,
                    unrecognized,
                }
            }
            t => return Err(WireError::UnknownTag(t as char)),
        };
        r.finish()?;
        Ok(msg)
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            BackendMessage::Authentication(a) => tagged(out, b'R', |b| match a {
                Authentication::Ok => b.put_i32(0),
                Authentication::CleartextPassword => b.put_i32(3),
                Authentication::Md5Password { salt } => {
                    b.put_i32(5);
                    b.put_slice(salt);
                }
                Authentication::Sasl { mechanisms } => {
                    b.put_i32(10);
                    for m in mechanisms {
                        put_cstr(b, m);
                    }
                    b.put_u8(0);
                }
                Authentication::SaslContinue(d) => {
                    b.put_i32(11);
                    b.put_slice(d);
                }
                Authentication::SaslFinal(d) => {
                    b.put_i32(12);
                    b.put_slice(d);
                }
            }),
            BackendMessage::ParameterStatus { name, value } => tagged(out, b'S', |b| {
                put_cstr(b, name);
                put_cstr(b, value);
            }),
            BackendMessage::BackendKeyData {
                process_id,
                secret_key,
            } => tagged(out, b'K', |b| {
                b.put_i32(*process_id);
                b.put_i32(*secret_key);
            }),
            BackendMessage::ReadyForQuery(s) => tagged(out, b'Z', |b| b.put_u8(*s)),
            BackendMessage::ErrorResponse(f) => tagged(out, b'E', |b| f.encode_body(b)),
            BackendMessage::NoticeResponse(f) => tagged(out, b'N', |b| f.encode_body(b)),
            BackendMessage::CommandComplete(t) => tagged(out, b'C', |b| put_cstr(b, t)),
            BackendMessage::RowDescription(fields) => tagged(out, b'T', |b| {
                b.put_i16(fields.len() as i16);
                for f in fields {
                    put_cstr(b, &f.name);
                    b.put_u32(f.table_oid);
                    b.put_i16(f.column);
                    b.put_u32(f.type_oid);
                    b.put_i16(f.type_size);
                    b.put_i32(f.type_modifier);
                    b.put_i16(f.format);
                }
            }),
            BackendMessage::DataRow(cols) => tagged(out, b'D', |b| {
                b.put_i16(cols.len() as i16);
                for c in cols {
                    put_value(b, c);
                }
            }),
            BackendMessage::ParameterDescription(t) => tagged(out, b't', |b| {
                b.put_i16(t.len() as i16);
                for x in t {
                    b.put_u32(*x);
                }
            }),
            BackendMessage::ParseComplete => tagged(out, b'1', |_| {}),
            BackendMessage::BindComplete => tagged(out, b'2', |_| {}),
            BackendMessage::CloseComplete => tagged(out, b'3', |_| {}),
            BackendMessage::NoData => tagged(out, b'n', |_| {}),
            BackendMessage::PortalSuspended => tagged(out, b's', |_| {}),
            BackendMessage::EmptyQueryResponse => tagged(out, b'I', |_| {}),
            BackendMessage::CopyInResponse { format, columns }
            | BackendMessage::CopyOutResponse { format, columns } => {
                let tag = if matches!(self, BackendMessage::CopyInResponse { .. }) {
                    b'G'
                } else {
                    b'H'
                };
                tagged(out, tag, |b| {
                    b.put_i8(*format);
                    b.put_i16(columns.len() as i16);
                    for c in columns {
                        b.put_i16(*c);
                    }
                })
            }
            BackendMessage::CopyData(d) => tagged(out, b'd', |b| b.put_slice(d)),
            BackendMessage::CopyDone => tagged(out, b'c', |_| {}),
            BackendMessage::NotificationResponse {
                process_id,
                channel,
                payload,
            } => tagged(out, b'A', |b| {
                b.put_i32(*process_id);
                put_cstr(b, channel);
                put_cstr(b, payload);
            }),
            BackendMessage::NegotiateProtocolVersion {
                minor,
                unrecognized,
            } => tagged(out, b'v', |b| {
                b.put_i32(*minor);
                b.put_i32(unrecognized.len() as i32);
                for u in unrecognized {
                    put_cstr(b, u);
                }
            }),
        }
    }
}

/// Only the transaction status byte of a ReadyForQuery frame (hot path: no decode).
pub fn ready_status(frame: &Frame) -> Option<u8> {
    (frame.tag == b'Z' && frame.body.len() == 1).then(|| frame.body[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_frame;

    fn round(m: BackendMessage) {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        let f = decode_frame(&mut b, usize::MAX).unwrap().unwrap();
        assert!(b.is_empty());
        assert_eq!(BackendMessage::decode(&f).unwrap(), m);
    }

    #[test]
    fn every_message_round_trips() {
        use Authentication as A;
        for a in [
            A::Ok,
            A::CleartextPassword,
            A::Md5Password { salt: [1, 2, 3, 4] },
            A::Sasl {
                mechanisms: vec!["SCRAM-SHA-256".into()],
            },
            A::SaslContinue(Bytes::from_static(b"r=abc,s=xyz,i=4096")),
            A::SaslFinal(Bytes::from_static(b"v=xyz")),
        ] {
            round(BackendMessage::Authentication(a));
        }
        round(BackendMessage::ParameterStatus {
            name: "TimeZone".into(),
            value: "UTC".into(),
        });
        round(BackendMessage::BackendKeyData {
            process_id: 1,
            secret_key: 2,
        });
        round(BackendMessage::ReadyForQuery(b'T'));
        let fields = ErrorFields {
            severity: "ERROR".into(),
            code: "42P01".into(),
            message: "nope".into(),
            other: vec![(b'V', "ERROR".into()), (b'D', "detail".into())],
        };
        round(BackendMessage::ErrorResponse(fields.clone()));
        round(BackendMessage::NoticeResponse(fields));
        round(BackendMessage::CommandComplete("SELECT 1".into()));
        round(BackendMessage::RowDescription(vec![FieldDescription {
            name: "a".into(),
            table_oid: 0,
            column: 0,
            type_oid: 23,
            type_size: 4,
            type_modifier: -1,
            format: 0,
        }]));
        round(BackendMessage::DataRow(vec![
            Some(Bytes::from_static(b"1")),
            None,
        ]));
        round(BackendMessage::ParameterDescription(vec![23, 25]));
        for m in [
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            BackendMessage::CloseComplete,
            BackendMessage::NoData,
            BackendMessage::PortalSuspended,
            BackendMessage::EmptyQueryResponse,
            BackendMessage::CopyDone,
        ] {
            round(m);
        }
        round(BackendMessage::CopyInResponse {
            format: 0,
            columns: vec![0, 0],
        });
        round(BackendMessage::CopyOutResponse {
            format: 1,
            columns: vec![1],
        });
        round(BackendMessage::CopyData(Bytes::from_static(b"x\n")));
        round(BackendMessage::NotificationResponse {
            process_id: 3,
            channel: "c".into(),
            payload: "p".into(),
        });
        round(BackendMessage::NegotiateProtocolVersion {
            minor: 0,
            unrecognized: vec!["_pq_.x".into()],
        });
    }

    #[test]
    fn malformed_is_an_error() {
        for (tag, body) in [
            (b'R', &b"\0\0"[..]),
            (b'T', &b"\0\x05a\0"[..]),
            (b'D', &b"\0\x01\0\0\0\x09ab"[..]),
            (b'Z', &b""[..]),
            (b'?', &b""[..]),
        ] {
            assert!(BackendMessage::decode(&Frame::new(tag, body)).is_err());
        }
    }
}
