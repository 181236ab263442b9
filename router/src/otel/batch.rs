//! The batch span processor between the SDK's tracer and the OTLP exporter.
//!
//! Why not the SDK's `BatchSpanProcessor`: it keeps its count of dropped spans private
//! (the router must show drops as a Prometheus counter) and runs exports on its own
//! thread with a blocking executor, outside the tokio runtime the hyper and tonic
//! clients need. This one is the same idea on tokio: `on_end` (called when a span ends,
//! on the client's task) only does a `try_send` into a bounded queue; when the queue is
//! full the span is dropped and counted, so a slow or dead collector never blocks or
//! slows a client. One task drains the queue into batches of up to [`BATCH`] spans, at
//! most [`INTERVAL`] apart, and awaits the exporter for each. At shutdown, [`Flusher`]
//! sends what is queued without waiting for the interval.

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use orochi_admin::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans per export request.
pub const BATCH: usize = 512;
/// Spans waiting for export; more are dropped (and counted).
pub const QUEUE: usize = 8192;
/// The longest a finished span waits before its batch is sent.
pub const INTERVAL: Duration = Duration::from_millis(500);
/// One export request's deadline.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the export task receives. Spans are queued unboxed, as the SDK's own queue
/// does (the rare flush is what is small, not what is common).
#[allow(clippy::large_enum_variant)]
enum Msg {
    Span(SpanData),
    /// Export what is queued now; answer when done.
    Flush(tokio::sync::oneshot::Sender<()>),
}

pub struct Batcher {
    tx: mpsc::Sender<Msg>,
    /// Counts drops (`orochi_pgdog_otel_spans_dropped_total`).
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl Batcher {
    /// Spawns the export task on the current tokio runtime.
    pub fn start<E: SpanExporter + 'static>(exporter: E, metrics: Arc<Metrics>) -> Self {
        Self::with_queue(exporter, metrics, QUEUE)
    }

    /// [`Batcher::start`] with a queue of `queue` spans.
    pub fn with_queue<E: SpanExporter + 'static>(
        exporter: E,
        metrics: Arc<Metrics>,
        queue: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue);
        tokio::spawn(export_loop(exporter, rx));
        Batcher { tx, metrics }
    }

    /// A handle that flushes this batcher's queue (keep it before the batcher moves
    /// into the tracer provider).
    pub fn flusher(&self) -> Flusher {
        Flusher(self.tx.clone())
    }
}

/// Flushes the export queue (graceful shutdown).
#[derive(Clone)]
pub struct Flusher(mpsc::Sender<Msg>);

impl Flusher {
    /// Exports every span queued before the call; gives up after `limit`.
    pub async fn flush(&self, limit: Duration) {
        let (done, wait) = tokio::sync::oneshot::channel();
        let _ = tokio::time::timeout(limit, async {
            if self.0.send(Msg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        })
        .await;
    }
}

async fn export_loop<E: SpanExporter>(exporter: E, mut rx: mpsc::Receiver<Msg>) {
    let mut healthy = true;
    loop {
        // Wait for a first span, then gather what else arrives within INTERVAL (or up
        // to a flush request, answered once this batch is exported).
        let mut flushed = None;
        let first = match rx.recv().await {
            None => return,
            Some(Msg::Flush(done)) => {
                let _ = done.send(());
                continue;
            }
            Some(Msg::Span(s)) => s,
        };
        let mut batch = Vec::with_capacity(BATCH);
        batch.push(first);
        let deadline = tokio::time::Instant::now() + INTERVAL;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Msg::Span(s))) => batch.push(s),
                Ok(Some(Msg::Flush(done))) => {
                    flushed = Some(done);
                    break;
                }
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len();
        let r = tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(batch)).await;
        match r {
            Ok(Ok(())) => {
                if !healthy {
                    tracing::info!("OTLP span export recovered");
                }
                healthy = true;
            }
            other => {
                if healthy {
                    let why = match other {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".into(),
                    };
                    tracing::warn!(
                        spans = n,
                        "OTLP span export failed ({why}); batches are lost until it recovers"
                    );
                }
                healthy = false;
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

impl SpanProcessor for Batcher {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(Msg::Span(span)).is_err() {
            self.metrics.otel_span_dropped();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An exporter whose collector never answers: the first export hangs for good.
    #[derive(Debug, Default)]
    struct Stuck(Arc<AtomicUsize>);

    impl SpanExporter for Stuck {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(batch.len(), Ordering::SeqCst);
            std::future::pending().await
        }
    }

    fn dropped(metrics: &Metrics) -> u64 {
        let families = metrics.registry().gather();
        let f = families
            .iter()
            .find(|f| f.name() == "orochi_pgdog_otel_spans_dropped_total")
            .expect("the drop counter is registered");
        f.get_metric()[0].get_counter().get_value() as u64
    }

    /// An exporter that records what it was given.
    #[derive(Debug, Default)]
    struct Seen(Arc<AtomicUsize>);

    impl SpanExporter for Seen {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn flush_exports_what_is_queued_before_the_interval() {
        let seen = Arc::new(AtomicUsize::new(0));
        let batcher = Batcher::start(Seen(seen.clone()), Arc::new(Metrics::new().unwrap()));
        let flusher = batcher.flusher();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batcher)
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..3 {
            tracer.start("s").end();
        }
        // The flush (queued behind the spans) cuts the batch short and waits for it.
        let t0 = std::time::Instant::now();
        flusher.flush(Duration::from_secs(5)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert!(
            t0.elapsed() < INTERVAL,
            "sent without waiting for the interval"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Batcher::with_queue(Stuck(seen.clone()), metrics.clone(), 4))
            .build();
        let tracer = provider.tracer("test");
        tracer.start("first").end();
        // The first batch goes out and its export never returns.
        tokio::time::timeout(Duration::from_secs(5), async {
            while seen.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the first span is exported");
        assert_eq!(dropped(&metrics), 0);
        let t0 = std::time::Instant::now();
        for _ in 0..10 {
            tracer.start("more").end();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "ending spans never waits"
        );
        // 4 wait in the queue behind the stuck export; 6 are dropped and counted.
        assert_eq!(dropped(&metrics), 6);
    }
}
