//! Which OTLP transport an `otel_endpoint` selects, decided before anything connects so
//! that `orochi-router` reports a bad endpoint once at start-up, and so the choice is
//! unit-tested apart from the exporters.
//!
//! The rule operators know from the collector's default ports: `:4318` (or any other
//! `http://` endpoint) is OTLP/HTTP with protobuf bodies, posted to `<endpoint>/v1/traces`;
//! a `grpc://` scheme or port `4317` is OTLP/gRPC. The exporters are built without TLS
//! (no OpenSSL, no certificate store in the proxy), so `https://` is refused with a reason.

/// The exporter an endpoint selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/HTTP, protobuf body, to this full URL (ends with `/v1/traces`).
    HttpProtobuf(String),
    /// OTLP/gRPC (`TraceService/Export`) to this `http://host:port` origin.
    Grpc(String),
}

/// The port of `authority` (`host:port`, `[v6]:port`), if it names one.
fn port(authority: &str) -> Option<u16> {
    let (host, port) = authority.rsplit_once(':')?;
    if host.starts_with('[') && !host.ends_with(']') {
        return None; // a bare IPv6 address: its colons are not a port
    }
    port.parse().ok()
}

/// Parses `[general] otel_endpoint`.
pub fn transport(endpoint: &str) -> Result<Transport, String> {
    let bad = |why: &str| format!("otel_endpoint \"{endpoint}\": {why}");
    let endpoint = endpoint.trim();
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| bad("expected http://host:port or grpc://host:port"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
            if p.is_empty() || port(authority).is_none() {
                return Err(bad("bad port"));
            }
            h
        }
        _ => authority,
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "grpc" => {
            if !path.is_empty() {
                return Err(bad("a gRPC endpoint has no path"));
            }
            Ok(Transport::Grpc(format!("http://{authority}")))
        }
        "http" if port(authority) == Some(4317) && path.is_empty() => {
            Ok(Transport::Grpc(format!("http://{authority}")))
        }
        "http" => {
            let path = if path.ends_with("/v1/traces") {
                path.to_string()
            } else {
                format!("{path}/v1/traces")
            };
            Ok(Transport::HttpProtobuf(format!("http://{authority}{path}")))
        }
        "https" | "grpcs" => Err(bad(
            "TLS to the collector is not supported; use a local collector or sidecar over http:// or grpc://",
        )),
        _ => Err(bad("expected http://host:port or grpc://host:port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transport::*;

    #[test]
    fn http_selects_protobuf_over_http() {
        assert_eq!(
            transport("http://otel:4318").unwrap(),
            HttpProtobuf("http://otel:4318/v1/traces".into())
        );
        assert_eq!(
            transport("http://127.0.0.1:9/x/").unwrap(),
            HttpProtobuf("http://127.0.0.1:9/x/v1/traces".into())
        );
        assert_eq!(
            transport("http://c:4318/v1/traces").unwrap(),
            HttpProtobuf("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            transport("http://collector").unwrap(),
            HttpProtobuf("http://collector/v1/traces".into())
        );
    }

    #[test]
    fn grpc_scheme_or_port_4317_selects_grpc() {
        assert_eq!(
            transport("grpc://otel:4317").unwrap(),
            Grpc("http://otel:4317".into())
        );
        assert_eq!(
            transport("grpc://10.1.2.3:9999").unwrap(),
            Grpc("http://10.1.2.3:9999".into())
        );
        assert_eq!(
            transport("http://otel:4317").unwrap(),
            Grpc("http://otel:4317".into())
        );
        assert_eq!(
            transport("http://[::1]:4317").unwrap(),
            Grpc("http://[::1]:4317".into())
        );
        // 4317 only as the port, not inside a host name or path.
        assert!(matches!(
            transport("http://h4317:4318").unwrap(),
            HttpProtobuf(_)
        ));
    }

    #[test]
    fn bad_endpoints_say_why() {
        for (e, why) in [
            ("https://a:4318", "TLS"),
            ("otel:4318", "expected"),
            ("ftp://a:1", "expected"),
            ("http://:1", "no host"),
            ("http://a:99999", "bad port"),
            ("grpc://a:4317/v1", "no path"),
        ] {
            let err = transport(e).unwrap_err();
            assert!(err.contains(why), "{e}: {err}");
        }
    }
}
