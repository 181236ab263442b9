//! Traces through a real router in front of two real PostgreSQL shards, exported to real
//! OTLP receivers that decode the protobuf: an HTTP server taking `POST /v1/traces`
//! (OTLP/HTTP, protobuf body) and a tonic `TraceService` (OTLP/gRPC). A two-shard
//! fan-out is one trace: the client's `transaction` span (continuing the application's
//! span from a sqlcommenter `traceparent`), a `pool.checkout` and a `shard` span per shard
//! under it, and the two-phase-commit phases of a two-shard write.

mod common;

use common::shards::*;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use sqlx::PgConnection;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Spans a receiver decoded, with the `service.name` of their resource.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    all.push((service.clone(), s));
                }
            }
        }
    }

    /// The spans of trace `trace_id` once `done` says they are all there.
    async fn trace(&self, trace_id: &[u8], done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        within(20, "spans reach the receiver", async {
            loop {
                let spans: Vec<Span> = {
                    let all = self.0.lock().unwrap();
                    all.iter()
                        .filter(|(svc, s)| s.trace_id == trace_id && svc.contains("orochi-router"))
                        .map(|(_, s)| s.clone())
                        .collect()
                };
                if done(&spans) {
                    return spans;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
    }

    fn all(&self) -> Vec<Span> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

/// An OTLP/HTTP receiver: HTTP/1.1 with keep-alive, `POST /v1/traces`, protobuf bodies.
async fn http_receiver() -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Received::default();
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    assert!(head.starts_with("post /v1/traces http/1.1"), "{head}");
                    assert!(
                        head.contains("content-type: application/x-protobuf"),
                        "{head}"
                    );
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .expect("a Content-Length")
                        .trim()
                        .parse()
                        .unwrap();
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 8192];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..head_end + len).skip(head_end).collect();
                    g.add(
                        ExportTraceServiceRequest::decode(&body[..])
                            .expect("an OTLP protobuf body"),
                    );
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver (tonic `TraceService`).
async fn grpc_receiver() -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Received::default();
    let service = TraceServiceServer::new(Grpc(got.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (port, got)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn attr(s: &Span, key: &str) -> Option<String> {
    let v = s.attributes.iter().find(|a| a.key == key)?.value.as_ref()?;
    match v.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

async fn raw(c: &mut PgConnection, sql: &str) -> Vec<sqlx::postgres::PgRow> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(c)
        .await
        .unwrap()
}

/// A two-shard fan-out read carrying the application's traceparent: one trace, the
/// transaction under the application's span, per shard a checkout and a `shard` span
/// under the transaction.
async fn fanout_is_one_trace(endpoint: String, got: Received) {
    let db = two_shard_db().await;
    let r = Router::start_with(
        &format!("otel_endpoint = \"{endpoint}\""),
        &pool_toml_two_shards(&db, ""),
    )
    .await;
    let mut c = r.connect(&db).await;
    let rows = raw(
        &mut c,
        &format!("SELECT id FROM users /*action='list',traceparent='00-{TRACE}-{PARENT}-01'*/"),
    )
    .await;
    assert_eq!(rows.len() as i64, ROWS);
    let spans = got
        .trace(&hex(TRACE), |s| {
            named(s, "transaction").len() == 1 && named(s, "shard").len() == 2
        })
        .await;
    let tx = named(&spans, "transaction")[0];
    assert_eq!(
        tx.parent_span_id,
        hex(PARENT),
        "continues the application's span"
    );
    assert_eq!(attr(tx, "db.namespace").as_deref(), Some(db.as_str()));
    assert_eq!(attr(tx, "db.user").as_deref(), Some(APP_USER));
    let mut shards: Vec<String> = named(&spans, "shard")
        .iter()
        .map(|s| {
            assert_eq!(
                s.parent_span_id, tx.span_id,
                "a shard span is the transaction's child"
            );
            assert!(s.start_time_unix_nano >= tx.start_time_unix_nano);
            assert!(s.end_time_unix_nano <= tx.end_time_unix_nano);
            attr(s, "orochi.shard").unwrap()
        })
        .collect();
    shards.sort();
    assert_eq!(shards, ["0", "1"]);
    let checkouts = named(&spans, "pool.checkout");
    assert_eq!(checkouts.len(), 2, "{spans:#?}");
    assert!(checkouts.iter().all(|s| s.parent_span_id == tx.span_id));

    // The next statement is a transaction (and a trace) of its own.
    raw(&mut c, "SELECT 1 FROM users WHERE id = 1").await;
    within(20, "a second trace", async {
        while !got
            .all()
            .iter()
            .any(|s| s.name == "transaction" && s.trace_id != hex(TRACE))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_two_shards_is_one_trace_over_otlp_http() {
    let (port, got) = http_receiver().await;
    fanout_is_one_trace(format!("http://127.0.0.1:{port}"), got).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_two_shards_is_one_trace_over_otlp_grpc() {
    let (port, got) = grpc_receiver().await;
    fanout_is_one_trace(format!("grpc://127.0.0.1:{port}"), got).await;
}

/// A write on both shards commits with two-phase commit: its phases are spans under the
/// transaction, in protocol order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_commit_phases_are_spans() {
    let (port, got) = http_receiver().await;
    let db = two_shard_db().await;
    let r = Router::start_with(
        &format!("otel_endpoint = \"http://127.0.0.1:{port}\""),
        &pool_toml_two_shards(&db, "[sharding.two_phase_commit]\nenabled = true"),
    )
    .await;
    let mut c = r.connect(&db).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    raw(
        &mut c,
        &format!(
            "/*traceparent='00-{trace}-b7ad6b7169203331-01'*/ UPDATE users SET score = score + 1"
        ),
    )
    .await;
    let phases = ["2pc.prepare", "2pc.decision", "2pc.commit_prepared"];
    let spans = got
        .trace(&hex(trace), |s| {
            phases.iter().all(|p| named(s, p).len() == 1) && named(s, "transaction").len() == 1
        })
        .await;
    let tx = named(&spans, "transaction")[0];
    let mut last_end = 0;
    for p in phases {
        let s = named(&spans, p)[0];
        assert_eq!(s.parent_span_id, tx.span_id, "{p}");
        assert!(
            s.start_time_unix_nano >= last_end,
            "{p} after the previous phase"
        );
        assert!(attr(s, "orochi.gid").unwrap().starts_with("orochi_"));
        last_end = s.end_time_unix_nano;
    }
    assert_eq!(named(&spans, "shard").len(), 2);
}

/// Router A (the real binary) dies right after its coordinator committed, leaving a
/// prepared participant; router B's recovery sweeper commits it and reports a
/// `2pc.sweep` trace with a `2pc.recover` span for that gid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_recoveries_are_spans() {
    use common::procs::{connect_router, free_port, router_config, spawn_router};
    let (port, got) = http_receiver().await;
    let db = two_shard_db().await;
    let dir = certs::scratch_dir("otel_sweep");
    let port_a = free_port();
    let config_a = router_config(&dir, &db, "a.toml", port_a);
    let _b = Router::start_with(
        &format!("otel_endpoint = \"http://127.0.0.1:{port}\""),
        &pool_toml_two_shards(
            &db,
            "[sharding.two_phase_commit]\nenabled = true\ntimeout_seconds = 1\ncleanup_interval_seconds = 1",
        ),
    )
    .await;
    let mut a = spawn_router(&config_a, Some("after_coordinator_commit"));
    let mut c = connect_router(port_a, &db).await;
    let r = sqlx::raw_sql("UPDATE users SET name = 'marked' WHERE city = 'Paris'")
        .execute(&mut c)
        .await;
    assert!(r.is_err(), "router A died mid-commit");
    within(10, "router A exits", a.wait()).await.unwrap();
    let (sweep, recover) = within(30, "the sweeper's recovery spans", async {
        loop {
            let all = got.all();
            let found = all.iter().find_map(|r| {
                if r.name != "2pc.recover"
                    || attr(r, "orochi.decision").as_deref() != Some("commit")
                {
                    return None;
                }
                let s = all
                    .iter()
                    .find(|s| s.name == "2pc.sweep" && s.span_id == r.parent_span_id)?;
                Some((s.clone(), r.clone()))
            });
            if let Some(f) = found {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(sweep.trace_id, recover.trace_id);
    assert!(
        sweep.parent_span_id.is_empty(),
        "a sweep is a trace of its own"
    );
    assert_eq!(attr(&sweep, "db.namespace").as_deref(), Some(db.as_str()));
    let gid = attr(&recover, "orochi.gid").unwrap();
    assert!(gid.starts_with("orochi_") && gid.contains("_s"), "{gid}");
}
