//! OpenTelemetry span export (OTLP over HTTP, JSON encoding) of client transactions,
//! enabled by `[general] otel_endpoint = "http://collector:4318"`.
//!
//! Hand-written on purpose: the router emits one kind of span (a client transaction:
//! from server checkout to release) and posts batches about once a second. A full
//! OpenTelemetry SDK would bring an HTTP/gRPC client stack into the proxy for that.
//! Spans go through a bounded channel; when the collector is slow or down, spans are
//! dropped (and counted), never the client's work. Only `http://` endpoints are supported.

use rand::RngCore;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const BATCH: usize = 512;
const QUEUE: usize = 8192;

/// One finished client transaction.
#[derive(Debug, Clone)]
pub struct TxSpan {
    pub start: SystemTime,
    pub end: SystemTime,
    pub pool: String,
    pub user: String,
    pub shard: usize,
    pub server: String,
    pub client_id: u64,
    pub failed: bool,
}

#[derive(Clone)]
pub struct Exporter {
    tx: mpsc::Sender<TxSpan>,
    pub dropped: Arc<AtomicU64>,
}

/// `http://host:port[/prefix]` -> (host, port, path of the traces endpoint).
pub fn parse_endpoint(endpoint: &str) -> Result<(String, u16, String), String> {
    let rest = endpoint.strip_prefix("http://").ok_or_else(|| {
        format!("otel_endpoint \"{endpoint}\": only http:// endpoints are supported")
    })?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse()
                .map_err(|_| format!("otel_endpoint \"{endpoint}\": bad port"))?,
        ),
        None => (authority.to_string(), 4318),
    };
    if host.is_empty() {
        return Err(format!("otel_endpoint \"{endpoint}\": no host"));
    }
    Ok((host, port, format!("{prefix}/v1/traces")))
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(key: &str, v: Value) -> Value {
    json!({ "key": key, "value": v })
}

/// The OTLP/JSON body for a batch of spans.
pub fn encode(spans: &[TxSpan]) -> Value {
    let mut rng = rand::thread_rng();
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut trace = [0u8; 16];
            let mut span = [0u8; 8];
            rng.fill_bytes(&mut trace);
            rng.fill_bytes(&mut span);
            json!({
                "traceId": hex(&trace),
                "spanId": hex(&span),
                "name": "transaction",
                "kind": 2,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": [
                    attr("db.system", json!({"stringValue": "postgresql"})),
                    attr("db.name", json!({"stringValue": s.pool})),
                    attr("db.user", json!({"stringValue": s.user})),
                    attr("server.address", json!({"stringValue": s.server})),
                    attr("orochi.shard", json!({"intValue": s.shard.to_string()})),
                    attr("orochi.client_id", json!({"intValue": s.client_id.to_string()})),
                ],
                "status": { "code": if s.failed { 2 } else { 0 } },
            })
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [attr("service.name", json!({"stringValue": "orochi-router"}))] },
            "scopeSpans": [{ "scope": { "name": "orochi-router" }, "spans": spans }],
        }]
    })
}

async fn post(host: &str, port: u16, path: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| std::io::ErrorKind::TimedOut)??;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    let status = std::str::from_utf8(&resp)
        .ok()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(status)
}

impl Exporter {
    /// Starts the background sender. Must run inside a tokio runtime.
    pub fn start(endpoint: &str) -> Result<Self, String> {
        let (host, port, path) = parse_endpoint(endpoint)?;
        let (tx, mut rx) = mpsc::channel::<TxSpan>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            let mut healthy = true;
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let first = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
                match first {
                    Ok(Some(s)) => batch.push(s),
                    Ok(None) => {
                        if batch.is_empty() {
                            return;
                        }
                    }
                    Err(_) => {}
                }
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(s) => batch.push(s),
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    continue;
                }
                let body = encode(&batch).to_string();
                batch.clear();
                match post(&host, port, &path, body.as_bytes()).await {
                    Ok(code) if (200..300).contains(&code) => {
                        if !healthy {
                            tracing::info!(endpoint = %format!("{host}:{port}"), "OTLP export recovered");
                        }
                        healthy = true;
                    }
                    other => {
                        if healthy {
                            tracing::warn!(endpoint = %format!("{host}:{port}"), result = ?other, "OTLP export failed; spans are dropped until it recovers");
                        }
                        healthy = false;
                    }
                }
            }
        });
        Ok(Exporter { tx, dropped })
    }

    /// Queues a span; drops it when the queue is full.
    pub fn record(&self, span: TxSpan) {
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://otel:4318").unwrap(),
            ("otel".into(), 4318, "/v1/traces".into())
        );
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9/x/").unwrap(),
            ("127.0.0.1".into(), 9, "/x/v1/traces".into())
        );
        assert!(parse_endpoint("https://a:1").is_err());
        assert!(parse_endpoint("http://:1").is_err());
    }

    #[tokio::test]
    async fn posts_spans_as_otlp_json() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let exporter = Exporter::start(&format!("http://127.0.0.1:{port}")).unwrap();
        let now = SystemTime::now();
        exporter.record(TxSpan {
            start: now,
            end: now + Duration::from_millis(3),
            pool: "app".into(),
            user: "u".into(),
            shard: 1,
            server: "127.0.0.1:5432".into(),
            client_id: 7,
            failed: false,
        });
        let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= len {
                    assert!(head.starts_with("POST /v1/traces HTTP/1.1"));
                    let v: Value = serde_json::from_str(body).unwrap();
                    let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
                    assert_eq!(span["name"], "transaction");
                    assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
                    assert!(span["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|a| a["key"] == "db.name" && a["value"]["stringValue"] == "app"));
                    break;
                }
            }
            assert!(n > 0, "connection closed before the whole request");
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
    }
}
