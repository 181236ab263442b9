//! Framing: splitting a byte stream into tagged messages without copying.
//!
//! A [`Frame`] is the tag plus the body as `Bytes` sliced out of the read buffer, for a
//! message that must outlive the buffer (one that waits for a plan or a connection). A
//! [`FrameRef`] is the same message borrowed where it lies: what the pass-through path
//! reads and copies on, with no split of the buffer, no reference count and no
//! allocation (issue 16). Lengths are checked before anything is reserved, and a frame
//! larger than the configured cap is refused (house rule 2).

use crate::WireError;
use bytes::{Buf, Bytes, BytesMut};

/// Default cap on one message (PostgreSQL's own limit for most messages is 1 GiB).
pub const MAX_MESSAGE_LEN: usize = 1 << 30;

/// The most `decode_frame` reserves ahead of the bytes that have arrived.
const RESERVE_STEP: usize = 64 * 1024;

/// One tagged protocol message: `tag`, then `body` (without the 4-byte length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub body: Bytes,
}

impl Frame {
    pub fn new(tag: u8, body: impl Into<Bytes>) -> Self {
        Frame {
            tag,
            body: body.into(),
        }
    }
    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        self.view().encode(out);
    }
    /// Encoded length on the wire.
    pub fn wire_len(&self) -> usize {
        self.view().wire_len()
    }
    /// The message borrowed: what the paths that read and forward in place take.
    pub fn view(&self) -> FrameRef<'_> {
        FrameRef {
            tag: self.tag,
            body: &self.body,
        }
    }
}

/// One tagged message borrowed where it lies (a read buffer, a [`Frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    pub tag: u8,
    pub body: &'a [u8],
}

impl<'a> FrameRef<'a> {
    /// The complete message at the front of `buf` that [`peek_frame`] found, `total`
    /// bytes long with its header.
    pub fn at_front(buf: &'a [u8], tag: u8, total: usize) -> Self {
        FrameRef {
            tag,
            body: &buf[5..total],
        }
    }
    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        encode_message(out, self.tag, self.body);
    }
    /// Encoded length on the wire.
    pub fn wire_len(&self) -> usize {
        5 + self.body.len()
    }
    /// An owned copy, for what must keep the message (a batch held for a retry).
    pub fn to_frame(&self) -> Frame {
        Frame::new(self.tag, Bytes::copy_from_slice(self.body))
    }
}

impl<'a> From<&'a Frame> for FrameRef<'a> {
    fn from(f: &'a Frame) -> Self {
        f.view()
    }
}

/// Appends a message of `tag` and `body` to `out`, as [`Frame::encode`] does.
pub fn encode_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    let [l0, l1, l2, l3] = (body.len() as i32 + 4).to_be_bytes();
    out.reserve(5 + body.len());
    out.extend_from_slice(&[tag, l0, l1, l2, l3]);
    out.extend_from_slice(body);
}

/// Peeks at a complete message at the front of `buf`: returns `(tag, total_len)` when the
/// whole message is present, `None` when more bytes are needed.
pub fn peek_frame(buf: &[u8], max: usize) -> Result<Option<(u8, usize)>, WireError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(WireError::BadLength(len as i64));
    }
    let len = len as usize;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    if buf.len() < len + 1 {
        return Ok(None);
    }
    Ok(Some((buf[0], len + 1)))
}

/// Removes one complete message from the front of `buf`, if there is one.
pub fn decode_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, WireError> {
    match peek_frame(buf, max)? {
        None => {
            if buf.len() >= 5 {
                // Header is complete: make room for the body in large steps, but never
                // for more than a bounded step ahead of what arrived: a 5-byte header
                // must not make the router reserve the gigabyte it declares.
                let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                buf.reserve((len + 1 - buf.len()).min(RESERVE_STEP));
            }
            Ok(None)
        }
        Some((tag, total)) => {
            let mut msg = buf.split_to(total);
            msg.advance(5);
            Ok(Some(Frame {
                tag,
                body: msg.freeze(),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_partial() {
        let mut out = BytesMut::new();
        Frame::new(b'Q', &b"select 1\0"[..]).encode(&mut out);
        Frame::new(b'S', Bytes::new()).encode(&mut out);
        let mut partial = BytesMut::from(&out[..7]);
        assert_eq!(decode_frame(&mut partial, MAX_MESSAGE_LEN).unwrap(), None);
        let f = decode_frame(&mut out, MAX_MESSAGE_LEN).unwrap().unwrap();
        assert_eq!(f.tag, b'Q');
        assert_eq!(&f.body[..], b"select 1\0");
        let f = decode_frame(&mut out, MAX_MESSAGE_LEN).unwrap().unwrap();
        assert_eq!((f.tag, f.body.len()), (b'S', 0));
        assert!(out.is_empty());
    }

    #[test]
    fn a_declared_length_reserves_nothing_large() {
        let mut b = BytesMut::from(&[b'Q', 0x3f, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode_frame(&mut b, MAX_MESSAGE_LEN).unwrap(), None);
        assert!(b.capacity() <= RESERVE_STEP + 64, "{}", b.capacity());
    }

    #[test]
    fn rejects_bad_and_huge_lengths() {
        let mut b = BytesMut::from(&[b'Q', 0, 0, 0, 3][..]);
        assert_eq!(decode_frame(&mut b, 100), Err(WireError::BadLength(3)));
        let mut b = BytesMut::from(&[b'Q', 0x7f, 0, 0, 0][..]);
        assert!(matches!(
            decode_frame(&mut b, 100),
            Err(WireError::TooLarge { .. })
        ));
        let mut b = BytesMut::from(&[b'Q', 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(decode_frame(&mut b, 100), Err(WireError::BadLength(-1)));
    }
}
