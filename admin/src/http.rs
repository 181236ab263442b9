//! The HTTP endpoint for Prometheus and probes: `GET /metrics`, `/health`, `/ready`.
//!
//! Hand-written over tokio instead of pulling in an HTTP stack: three GET routes, one
//! request per connection (`Connection: close`), request head capped at 8 KiB and read
//! under a timeout, which is all Prometheus and Kubernetes probes need. With a
//! `metrics_token` configured, `/metrics` answers 401 unless the request carries
//! `Authorization: Bearer <token>`; the probes stay open (Kubernetes sends no token).

use crate::metrics::Metrics;
use crate::view::AdminView;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` is cancelled. Once `draining` is cancelled (graceful shutdown
/// began), `/health` and `/ready` answer 503 while `/metrics` keeps working.
pub async fn serve_http(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    view: Arc<dyn AdminView>,
    draining: CancellationToken,
    stop: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let (metrics, view, draining) = (metrics.clone(), view.clone(), draining.clone());
                tracker.spawn(async move {
                    if let Err(e) = handle(stream, &metrics, view.as_ref(), &draining).await {
                        tracing::debug!(error = %e, "metrics HTTP connection failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// One request/response on any byte stream.
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    metrics: &Metrics,
    view: &dyn AdminView,
    draining: &CancellationToken,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let Some((head, authorization)) = head else {
        return respond(&mut stream, 400, "text/plain", "bad request\n", false).await;
    };
    let mut parts = head.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut stream, 405, "text/plain", "only GET\n", head_only).await;
    }
    let path = target.split('?').next().unwrap_or("");
    let probe = |ok: bool| {
        let ok = ok && !draining.is_cancelled();
        if ok {
            (200, "ok\n")
        } else if draining.is_cancelled() {
            (503, "shutting down\n")
        } else {
            (503, "unavailable\n")
        }
    };
    match path {
        "/metrics" if !token_matches(view.metrics_token(), authorization.as_deref()) => {
            respond(&mut stream, 401, "text/plain", "unauthorized\n", head_only).await
        }
        "/metrics" => {
            let body = metrics.scrape(view);
            respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                head_only,
            )
            .await
        }
        "/health" | "/healthz" => {
            let (code, body) = probe(view.healthy());
            respond(&mut stream, code, "text/plain", body, head_only).await
        }
        "/ready" | "/readyz" => {
            let (code, body) = probe(view.ready());
            respond(&mut stream, code, "text/plain", body, head_only).await
        }
        _ => respond(&mut stream, 404, "text/plain", "not found\n", head_only).await,
    }
}

/// Whether a request may read `/metrics`: no token configured, or the request's
/// `Authorization: Bearer` value equals it (compared in constant time).
fn token_matches(token: Option<String>, authorization: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(given) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (token.as_bytes(), given.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request line and the `Authorization` header, once the whole head has arrived;
/// `None` when it is malformed, too large, or the client closed early.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Option<(String, Option<String>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let mut lines = head.lines();
            let line = lines.next().unwrap_or("");
            let authorization = lines.find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("authorization")
                    .then(|| v.trim().to_string())
            });
            return Ok(line.ends_with("HTTP/1.1") || line.ends_with("HTTP/1.0"))
                .map(|ok| ok.then(|| (line.to_string(), authorization)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    content_type: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}
