//! OpenTelemetry traces of what the router does for a client, exported over OTLP
//! (HTTP/protobuf or gRPC, see [`endpoint`]) when `[general] otel_endpoint` is set.
//!
//! Spans (names are stable; attributes carry pool, user, shard, server):
//! - `transaction`: a client transaction, from its first statement to the moment the
//!   session is idle again (autocommit: one statement). Its parent is the application's
//!   span when the SQL carries a sqlcommenter `traceparent` ([`traceparent`]).
//! - `pool.checkout`: the wait for a server connection, under `transaction`.
//! - `shard`: one per shard of a fan-out, under `transaction`, so a statement over two
//!   shards is one trace with two `shard` spans.
//! - `2pc.prepare`, `2pc.decision`, `2pc.commit_prepared` (or `2pc.abort`): the phases of
//!   a two-phase commit, under `transaction`.
//! - `2pc.sweep` with one `2pc.recover` per transaction the recovery sweeper resolved.
//!
//! The OpenTelemetry API is used directly rather than through `tracing` spans: a client
//! transaction outlives many awaits and statements and is held in the session's state,
//! its children have explicit parents, and the log subscriber must not see any of it.
//! Off (no `otel_endpoint`) the session's only cost is one `OnceLock` read per statement.

pub mod batch;
pub mod endpoint;
pub mod traceparent;

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, Span};
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use endpoint::{transport, Transport};

/// The router's tracer (one per process, started with the server).
pub struct Tracing {
    tracer: SdkTracer,
    /// Kept so the processor lives as long as the tracer.
    _provider: SdkTracerProvider,
    flusher: batch::Flusher,
    pub transport: Transport,
}

impl Tracing {
    /// Builds the exporter `endpoint` selects and its export task. Must run inside the
    /// tokio runtime (the export task and the HTTP/gRPC clients live there).
    pub fn start(endpoint: &str, metrics: Arc<orochi_admin::Metrics>) -> Result<Self, String> {
        let transport = transport(endpoint)?;
        let built = match &transport {
            Transport::HttpProtobuf(url) => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .with_timeout(Duration::from_secs(10))
                .build(),
            Transport::Grpc(url) => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .with_timeout(Duration::from_secs(10))
                .build(),
        };
        let mut exporter =
            built.map_err(|e| format!("otel_endpoint \"{endpoint}\": exporter: {e}"))?;
        let resource = Resource::builder_empty()
            .with_service_name("orochi-router")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
        let batcher = batch::Batcher::start(exporter, metrics);
        let flusher = batcher.flusher();
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(batcher)
            .build();
        Ok(Tracing {
            tracer: provider.tracer("orochi-router"),
            _provider: provider,
            flusher,
            transport,
        })
    }

    /// Sends the spans still queued (shutdown); gives up after `limit`.
    pub async fn flush(&self, limit: Duration) {
        self.flusher.flush(limit).await;
    }

    /// Starts a client transaction's span; `sql` (a Query's or Parse's text) may name
    /// the application's span in a sqlcommenter `traceparent`.
    pub fn transaction(&self, sql: Option<&[u8]>, attrs: Vec<KeyValue>) -> Context {
        let parent = match sql.and_then(traceparent::from_sql) {
            Some(remote) => Context::new().with_remote_span_context(remote),
            None => Context::new(),
        };
        let span = self
            .tracer
            .span_builder("transaction")
            .with_kind(SpanKind::Server)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// A child of the span in `parent`; it ends when dropped.
    pub fn child(&self, parent: &Context, name: &'static str, attrs: Vec<KeyValue>) -> Span {
        self.tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, parent)
    }

    /// A span that already happened (the sweeper reports after the fact).
    pub fn past(
        &self,
        parent: &Context,
        name: &'static str,
        start: SystemTime,
        attrs: Vec<KeyValue>,
    ) -> Span {
        self.tracer
            .span_builder(name)
            .with_start_time(start)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, parent)
    }
}

/// Marks the span of `cx` failed.
pub fn fail(cx: &Context, why: &str) {
    cx.span().set_status(Status::error(why.to_string()));
}

/// Marks `span` failed.
pub fn fail_span(span: &mut Span, why: &str) {
    span.set_status(Status::error(why.to_string()));
}

/// A [`orochi_twopc::PhaseObserver`] that turns the phases of one two-phase commit into
/// spans under the client's transaction.
pub struct PhaseSpans<'a> {
    pub tracing: &'a Tracing,
    pub parent: &'a Context,
    pub current: Option<Span>,
}

impl orochi_twopc::PhaseObserver for PhaseSpans<'_> {
    fn enter(&mut self, phase: orochi_twopc::Phase, gid: &str) {
        use orochi_twopc::Phase::*;
        let name = match phase {
            Preparing => "2pc.prepare",
            Deciding => "2pc.decision",
            Committing => "2pc.commit_prepared",
            Aborting => "2pc.abort",
            InDoubt => {
                if let Some(s) = self.current.as_mut() {
                    fail_span(s, "in doubt: left for the recovery sweeper");
                }
                self.current = None;
                return;
            }
            Active | Committed | Aborted => {
                self.current = None;
                return;
            }
        };
        // The previous phase ends where this one starts.
        self.current = None;
        self.current = Some(self.tracing.child(
            self.parent,
            name,
            vec![KeyValue::new("orochi.gid", gid.to_string())],
        ));
    }
}
