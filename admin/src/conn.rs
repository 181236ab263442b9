//! Buffered message I/O on one console connection: the codec is `orochi-wire`, this
//! only moves bytes (house rule 1).

use crate::AdminError;
use bytes::BytesMut;
use orochi_wire::{decode_frame, decode_startup, BackendMessage, Frame, PgError, StartupRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Admin commands are short; a client sending more than this is not an admin tool.
pub const MAX_ADMIN_MESSAGE: usize = 1 << 20;

pub struct Conn<S> {
    stream: S,
    read: BytesMut,
    write: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            read: BytesMut::with_capacity(4096),
            write: BytesMut::with_capacity(4096),
        }
    }

    /// A connection whose first bytes were already read (during TLS negotiation).
    pub fn with_buffered(stream: S, buffered: &[u8]) -> Self {
        let mut c = Self::new(stream);
        c.read.extend_from_slice(buffered);
        c
    }

    /// Fills the read buffer; `Ok(false)` on a clean end of stream.
    async fn fill(&mut self) -> Result<bool, AdminError> {
        Ok(self.stream.read_buf(&mut self.read).await? > 0)
    }

    /// The next untagged startup-phase packet; `None` when the client hung up.
    pub async fn read_startup(&mut self) -> Result<Option<StartupRequest>, AdminError> {
        loop {
            if let Some(req) = decode_startup(&mut self.read)? {
                return Ok(Some(req));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The next tagged message; `None` when the client hung up.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, AdminError> {
        loop {
            if let Some(f) = decode_frame(&mut self.read, MAX_ADMIN_MESSAGE)? {
                return Ok(Some(f));
            }
            if !self.fill().await? {
                if self.read.is_empty() {
                    return Ok(None);
                }
                return Err(AdminError::Protocol("connection closed mid-message".into()));
            }
        }
    }

    /// A PasswordMessage / SASL response body; anything else breaks the auth flow.
    pub async fn read_password(&mut self) -> Result<Option<bytes::Bytes>, AdminError> {
        match self.read_frame().await? {
            None => Ok(None),
            Some(f) if f.tag == b'p' => Ok(Some(f.body)),
            Some(f) => Err(AdminError::Protocol(format!(
                "expected a password message, got message type '{}'",
                f.tag as char
            ))),
        }
    }

    pub fn queue(&mut self, msg: &BackendMessage) {
        msg.encode(&mut self.write);
    }

    pub fn queue_error(&mut self, err: &PgError) {
        err.encode(&mut self.write);
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), AdminError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), AdminError> {
        if !self.write.is_empty() {
            self.stream.write_all(&self.write).await?;
            self.write.clear();
        }
        self.stream.flush().await?;
        Ok(())
    }
}
