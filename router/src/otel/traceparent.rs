//! W3C `traceparent` from a sqlcommenter comment, so an application's trace continues
//! through the router: `SELECT 1 /*traceparent='00-<32 hex>-<16 hex>-<2 hex>'*/`, possibly
//! among other `key='value'` pairs (sqlcommenter URL-encodes values; a traceparent has
//! nothing to encode). Hand-written: it runs on statement text only when tracing is on,
//! and a malformed value is ignored (the transaction gets a trace of its own), never an error.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// The remote parent named by the first valid `traceparent` in a `/* */` comment of `sql`.
pub fn from_sql(sql: &[u8]) -> Option<SpanContext> {
    let mut rest = sql;
    while let Some(start) = find(rest, b"/*") {
        let body = &rest[start + 2..];
        let end = find(body, b"*/")?;
        if let Some(sc) = from_comment(&body[..end]) {
            return Some(sc);
        }
        rest = &body[end + 2..];
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn from_comment(comment: &[u8]) -> Option<SpanContext> {
    let text = std::str::from_utf8(comment).ok()?;
    text.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("traceparent") {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(v);
        parse(v)
    })
}

fn hex_ok(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `00-<trace id>-<parent id>-<flags>` (W3C Trace Context, version 00; lowercase hex).
pub fn parse(v: &str) -> Option<SpanContext> {
    let mut it = v.split('-');
    let (version, trace, span, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some()
        || version != "00"
        || !hex_ok(trace, 32)
        || !hex_ok(span, 16)
        || !hex_ok(flags, 2)
    {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace == TraceId::INVALID || span == SpanId::INVALID {
        return None;
    }
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_traceparent_among_other_pairs() {
        for sql in [
            format!("SELECT 1 /*traceparent='{TP}'*/"),
            format!("/*action='list',traceparent='{TP}',framework='x'*/ SELECT 1"),
            format!("SELECT 1 /* a comment */ /*controller='c', traceparent='{TP}'*/"),
        ] {
            let sc = from_sql(sql.as_bytes()).unwrap_or_else(|| panic!("{sql}"));
            assert_eq!(
                sc.trace_id(),
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
            );
            assert_eq!(sc.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
            assert!(sc.is_sampled() && sc.is_remote());
        }
    }

    #[test]
    fn malformed_values_are_ignored() {
        for v in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero span id
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "garbage",
            "",
        ] {
            let sql = format!("SELECT 1 /*traceparent='{v}'*/");
            assert!(from_sql(sql.as_bytes()).is_none(), "{v}");
        }
        assert!(from_sql(b"SELECT 1").is_none());
        assert!(from_sql(b"SELECT 1 /*traceparent='unterminated").is_none());
        assert!(from_sql(b"SELECT '/*' AS x").is_none());
    }
}
