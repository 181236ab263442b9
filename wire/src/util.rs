//! Small bounds-checked readers over message bodies. Every read checks the remaining
//! length first, so a malformed message becomes a `WireError`, never a panic.

use crate::WireError;
use bytes::{BufMut, Bytes, BytesMut};

/// A cursor over one message body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(WireError::Truncated(self.what))?;
        self.pos += 1;
        Ok(b)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, WireError> {
        let s = self.take(2)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, WireError> {
        let s = self.take(4)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated(self.what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// A count read from the wire, checked against what the body can still hold
    /// (`min_each` bytes per element) so a hostile count cannot make us allocate.
    pub(crate) fn count(&mut self, min_each: usize) -> Result<usize, WireError> {
        let n = self.i16()?;
        if n < 0 || (n as usize).saturating_mul(min_each) > self.remaining() {
            return Err(WireError::Invalid(self.what));
        }
        Ok(n as usize)
    }
    pub(crate) fn cstr(&mut self) -> Result<&'a str, WireError> {
        let rest = &self.buf[self.pos..];
        // Statement text can be long: the terminator is found with a vectorised scan.
        let end = memchr::memchr(0, rest).ok_or(WireError::MissingNul(self.what))?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| WireError::Utf8(self.what))?;
        self.pos += end + 1;
        Ok(s)
    }
    /// A length-prefixed value (-1 = NULL) as used by Bind and DataRow.
    pub(crate) fn value(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(WireError::Invalid(self.what));
        }
        self.take(len as usize).map(Some)
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    pub(crate) fn finish(&self) -> Result<(), WireError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WireError::Invalid(self.what))
        }
    }
}

pub(crate) fn put_cstr(buf: &mut BytesMut, s: &str) {
    buf.put_slice(s.as_bytes());
    buf.put_u8(0);
}

pub(crate) fn put_value(buf: &mut BytesMut, v: &Option<Bytes>) {
    match v {
        None => buf.put_i32(-1),
        Some(b) => {
            buf.put_i32(b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// Writes a tagged message: tag, length placeholder, body from `f`, then patches the length.
pub(crate) fn tagged(buf: &mut BytesMut, tag: u8, f: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_i32(0);
    f(buf);
    let len = (buf.len() - at) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
