//! ErrorResponse / NoticeResponse fields, and the builders the router uses to speak
//! errors to clients. Only the router's error module decides *which* error to send;
//! this module only knows how the fields are laid out.

use crate::util::{put_cstr, tagged, Reader};
use crate::WireError;
use bytes::{BufMut, BytesMut};

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorFields {
    /// 'S' (localized) severity, e.g. ERROR, FATAL.
    pub severity: String,
    /// 'C' SQLSTATE.
    pub code: String,
    /// 'M'
    pub message: String,
    /// Every other field, in order (e.g. 'D' detail, 'H' hint, 'V' non-localized severity).
    pub other: Vec<(u8, String)>,
}

impl ErrorFields {
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body, "ErrorResponse");
        let mut f = ErrorFields::default();
        loop {
            let t = r.u8()?;
            if t == 0 {
                break;
            }
            let v = r.cstr()?.to_string();
            match t {
                b'S' => f.severity = v,
                b'C' => f.code = v,
                b'M' => f.message = v,
                _ => f.other.push((t, v)),
            }
        }
        r.finish()?;
        Ok(f)
    }

    pub fn field(&self, t: u8) -> Option<&str> {
        self.other
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_str())
    }

    /// FATAL or PANIC: the server closes the connection after sending it. Read from the
    /// non-localized severity ('V') when the server sent one (`lc_messages` translates 'S').
    pub fn ends_session(&self) -> bool {
        matches!(
            self.field(b'V').unwrap_or(&self.severity),
            "FATAL" | "PANIC"
        )
    }

    pub fn encode_body(&self, b: &mut BytesMut) {
        for (t, v) in [
            (b'S', &self.severity),
            (b'V', &self.severity),
            (b'C', &self.code),
            (b'M', &self.message),
        ] {
            if t == b'V' && self.field(b'V').is_some() {
                continue;
            }
            b.put_u8(t);
            put_cstr(b, v);
        }
        for (t, v) in &self.other {
            b.put_u8(*t);
            put_cstr(b, v);
        }
        b.put_u8(0);
    }
}

/// A PostgreSQL error the router itself produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub fields: ErrorFields,
}

impl PgError {
    pub fn new(severity: &str, code: &str, message: impl Into<String>) -> Self {
        PgError {
            fields: ErrorFields {
                severity: severity.into(),
                code: code.into(),
                message: message.into(),
                other: vec![],
            },
        }
    }
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self::new("ERROR", code, message)
    }
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        Self::new("FATAL", code, message)
    }
    pub fn with_detail(mut self, d: impl Into<String>) -> Self {
        self.fields.other.push((b'D', d.into()));
        self
    }
    pub fn with_hint(mut self, h: impl Into<String>) -> Self {
        self.fields.other.push((b'H', h.into()));
        self
    }
    pub fn is_fatal(&self) -> bool {
        self.fields.severity == "FATAL"
    }
    /// Appends the ErrorResponse message.
    pub fn encode(&self, out: &mut BytesMut) {
        tagged(out, b'E', |b| self.fields.encode_body(b));
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.fields.severity, self.fields.code, self.fields.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_frame, BackendMessage};

    #[test]
    fn a_fatal_or_panic_ends_the_session_whatever_the_language() {
        let mut f = PgError::fatal("57P01", "x").fields;
        assert!(f.ends_session());
        f.severity = "FATAL".into();
        f.other.push((b'V', "ERROR".into()));
        assert!(!f.ends_session(), "V wins over a localized S");
        let mut f = PgError::error("42601", "x").fields;
        f.severity = "SCHWERWIEGEND".into();
        f.other.push((b'V', "FATAL".into()));
        assert!(f.ends_session());
        assert!(!PgError::error("42601", "x").fields.ends_session());
        assert!(PgError::new("PANIC", "XX000", "x").fields.ends_session());
    }

    #[test]
    fn error_round_trips_through_backend_decoder() {
        let e = PgError::error("0A000", "not supported").with_hint("add the key");
        let mut b = BytesMut::new();
        e.encode(&mut b);
        let f = decode_frame(&mut b, usize::MAX).unwrap().unwrap();
        match BackendMessage::decode(&f).unwrap() {
            BackendMessage::ErrorResponse(fields) => {
                assert_eq!(fields.code, "0A000");
                assert_eq!(fields.message, "not supported");
                assert_eq!(fields.field(b'H'), Some("add the key"));
                assert_eq!(fields.field(b'V'), Some("ERROR"));
            }
            m => panic!("{m:?}"),
        }
    }
}
