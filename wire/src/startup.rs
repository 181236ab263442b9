//! The untagged first message of a connection: StartupMessage, SSLRequest,
//! GSSENCRequest or CancelRequest.

use crate::util::{put_cstr, Reader};
use crate::WireError;
use bytes::{Buf, BufMut, BytesMut};

pub const SSL_REQUEST_CODE: i32 = 80877103;
pub const GSSENC_REQUEST_CODE: i32 = 80877104;
pub const CANCEL_REQUEST_CODE: i32 = 80877102;
/// Startup packets are small; anything larger is hostile.
pub const MAX_STARTUP_LEN: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupRequest {
    Ssl,
    GssEnc,
    Cancel {
        process_id: i32,
        secret_key: i32,
    },
    /// Protocol 3.x. `minor` > 0 is answered with NegotiateProtocolVersion.
    Startup {
        minor: u16,
        params: Vec<(String, String)>,
    },
}

impl StartupRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            StartupRequest::Startup { params, .. } => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let at = out.len();
        out.put_i32(0);
        match self {
            StartupRequest::Ssl => out.put_i32(SSL_REQUEST_CODE),
            StartupRequest::GssEnc => out.put_i32(GSSENC_REQUEST_CODE),
            StartupRequest::Cancel {
                process_id,
                secret_key,
            } => {
                out.put_i32(CANCEL_REQUEST_CODE);
                out.put_i32(*process_id);
                out.put_i32(*secret_key);
            }
            StartupRequest::Startup { minor, params } => {
                out.put_i32((3 << 16) | *minor as i32);
                for (k, v) in params {
                    put_cstr(out, k);
                    put_cstr(out, v);
                }
                out.put_u8(0);
            }
        }
        let len = (out.len() - at) as i32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// Takes one startup-phase packet off the front of `buf` when complete.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<StartupRequest>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP_LEN {
        return Err(WireError::BadLength(len as i64));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let mut msg = buf.split_to(len);
    msg.advance(4);
    let mut r = Reader::new(&msg, "startup packet");
    let code = r.i32()?;
    let req = match code {
        SSL_REQUEST_CODE => StartupRequest::Ssl,
        GSSENC_REQUEST_CODE => StartupRequest::GssEnc,
        CANCEL_REQUEST_CODE => StartupRequest::Cancel {
            process_id: r.i32()?,
            secret_key: r.i32()?,
        },
        v => {
            let (major, minor) = ((v >> 16) as u16, (v & 0xffff) as u16);
            if major != 3 {
                return Err(WireError::UnsupportedProtocol { major, minor });
            }
            let mut params = Vec::new();
            loop {
                let k = r.cstr()?;
                if k.is_empty() {
                    break;
                }
                let v = r.cstr()?;
                params.push((k.to_string(), v.to_string()));
            }
            return Ok(Some(StartupRequest::Startup { minor, params }));
        }
    };
    r.finish()?;
    Ok(Some(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(req: StartupRequest) {
        let mut b = BytesMut::new();
        req.encode(&mut b);
        assert_eq!(decode_startup(&mut b).unwrap(), Some(req));
        assert!(b.is_empty());
    }

    #[test]
    fn round_trips() {
        round(StartupRequest::Ssl);
        round(StartupRequest::GssEnc);
        round(StartupRequest::Cancel {
            process_id: 7,
            secret_key: -9,
        });
        round(StartupRequest::Startup {
            minor: 0,
            params: vec![
                ("user".into(), "app".into()),
                ("database".into(), "app".into()),
            ],
        });
    }

    #[test]
    fn rejects_garbage() {
        let mut b = BytesMut::from(&[0, 0, 0, 2][..]);
        assert!(decode_startup(&mut b).is_err());
        let mut b = BytesMut::from(&[0, 0, 0, 8, 0, 2, 0, 0][..]);
        assert_eq!(
            decode_startup(&mut b),
            Err(WireError::UnsupportedProtocol { major: 2, minor: 0 })
        );
        let mut b = BytesMut::from(&[0, 0, 0, 12, 0, 3, 0, 0, b'u', b's', b'e', b'r'][..]);
        assert!(decode_startup(&mut b).is_err());
    }
}
