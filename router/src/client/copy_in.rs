//! `COPY ... FROM STDIN` into a table of a sharded pool that spans several shards. Every
//! shard starts the same COPY inside a transaction; the client sees one CopyInResponse;
//! its data is cut into rows and each row streams to the shard its key hashes to
//! (`fanout::copy_rows`; a replicated table's rows go to every shard). At the client's
//! CopyDone the shards commit together like any multi-shard write (two-phase commit, or
//! best effort when the pool allows it); any error (a shard's, a key the router cannot
//! read, the client's CopyFail, a lost client) rolls every shard back. Errors travel as
//! encoded ErrorResponse messages, a shard's exactly as it sent it.

use super::job::Job;
use super::reply::{error_bytes, ready};
use super::shard_stream::{Event, Stream};
use super::sharded_path::ShardedPath;
use super::tags::sum_tags;
use crate::backend::ServerConn;
use crate::error::{Result, RouterError};
use crate::fanout::copy_rows::Splitter;
use crate::planner::sharding::{CopyIn, KeyAt};
use bytes::{Bytes, BytesMut};
use orochi_wire::{decode_frame, Frame, FrontendMessage, PgError};

/// Data for one shard is sent once this much is buffered for it.
const CHUNK: usize = 64 * 1024;

/// Why the load stopped before the client's CopyDone.
enum Abort {
    /// The router's own error, for the client (and a CopyFail for the shards).
    Error(PgError),
    /// The client sent CopyFail with this message.
    ClientFail(String),
}

impl ShardedPath<'_> {
    pub(crate) async fn run_copy_in(&mut self, job: Job, spec: CopyIn) -> Result<()> {
        self.ctx
            .app
            .metrics
            .cross_shard_query(&self.ctx.user.pool_name);
        self.tx().tx_poisoned |= job.in_tx;
        let mut conns = match self.fanout_checkouts(&job).await {
            Ok(c) => c,
            Err(e) => return self.fanout_failed(e, false),
        };
        let key_at = match spec.key.as_ref().map(|k| (&k.at, &k.column)) {
            None => None,
            Some((KeyAt::Field(i), _)) => Some(*i),
            Some((KeyAt::Column { table }, column)) => {
                match key_position(conns[0].1.conn(), table, column).await {
                    Ok(Some(i)) => Some(i),
                    Ok(None) => {
                        let e = PgError::error(
                            "42703",
                            format!("shard key column \"{column}\" of {table} not found (or generated) on shard {}", conns[0].0),
                        );
                        return self.fanout_failed(RouterError::Pg(e), false);
                    }
                    Err(e) => return self.fanout_failed(e, false),
                }
            }
        };
        let sql = job.sql.first().cloned().unwrap_or_default();
        // Outside a transaction each shard's part is its own transaction, committed
        // together at the end; inside the client's, only shards new to it need BEGIN.
        let begin = match job.in_tx {
            false => Some("BEGIN".to_string()),
            true => {
                let tx = self.tx();
                tx.tx_begin.clone().or_else(|| tx.pending_begin.clone())
            }
        };
        let mut streams = Vec::with_capacity(conns.len());
        for (_, mut co, joins) in conns.drain(..) {
            let mut b = BytesMut::new();
            let mut readies = 1;
            if let Some(begin) = begin.as_ref().filter(|_| joins || !job.in_tx) {
                FrontendMessage::Query(begin.clone()).encode(&mut b);
                readies += 1;
            }
            FrontendMessage::Query(sql.clone()).encode(&mut b);
            if let Err(e) = co.conn().write_all(&b).await {
                return self.fanout_failed(e, false);
            }
            streams.push(Stream {
                co,
                readies,
                lead: readies - 1,
                trailer: super::shard_stream::Trailer::None,
                complete: false,
                copy_in: true,
            });
        }
        let mut notices = BytesMut::new();
        // Every shard must be ready for data before the client is told to send it.
        let mut first_error: Option<Bytes> = None;
        let mut header: Option<Frame> = None;
        for s in streams.iter_mut() {
            match s.next(&mut notices).await {
                Ok(Event::CopyIn(g)) => {
                    header.get_or_insert(g);
                }
                Ok(Event::Error(f)) => {
                    first_error.get_or_insert(encoded(&f));
                }
                Ok(_) => {
                    s.co.conn().broken = true;
                }
                Err(e) => {
                    s.co.conn().broken = true;
                    if first_error.is_none() {
                        first_error = e.to_client().map(|pg| error_bytes(&pg));
                    }
                }
            }
        }
        self.emit(&notices.split());
        let header = match (first_error, header) {
            (None, Some(h)) => h,
            (e, _) => {
                let e = e.unwrap_or_else(|| {
                    error_bytes(&PgError::error("08P01", "a shard did not start the COPY"))
                });
                self.abort_shards(&mut streams, "another shard failed")
                    .await;
                return self.finish_copy(&job, streams, Err(e)).await;
            }
        };
        let mut b = BytesMut::new();
        header.encode(&mut b);
        self.emit(&b);
        self.front.flush().await?;

        let slot: Vec<Option<usize>> = (0..self.ctx.user.sharding.as_ref().map_or(0, |s| s.shards))
            .map(|shard| job.shards.iter().position(|s| *s == shard))
            .collect();
        let mut split = Splitter::new(spec, key_at, slot.len());
        let outcome: std::result::Result<(), Abort> = loop {
            let f = match self.next_client_frame().await {
                Ok(f) => f,
                Err(e) => {
                    // The client is gone: closing the connections rolls every shard back.
                    for s in streams.iter_mut() {
                        s.co.conn().broken = true;
                    }
                    return Err(e);
                }
            };
            let step = match f.tag {
                b'd' => split.feed(&f.body),
                b'c' => match split.finish() {
                    Ok(()) => break Ok(()),
                    Err(e) => Err(e),
                },
                b'f' => {
                    let msg = match FrontendMessage::decode(&f) {
                        Ok(FrontendMessage::CopyFail(m)) => m,
                        _ => String::new(),
                    };
                    break Err(Abort::ClientFail(msg));
                }
                // Flush and Sync mean nothing during COPY.
                b'H' | b'S' => Ok(()),
                t => {
                    break Err(Abort::Error(PgError::error(
                        "08P01",
                        format!("unexpected message type 0x{t:02X} during COPY from stdin"),
                    )))
                }
            };
            if let Err(e) = step {
                break Err(Abort::Error(PgError::error(e.code, e.message)));
            }
            if let Err(e) = self.send_rows(&mut streams, &slot, &mut split, CHUNK).await {
                break Err(Abort::Error(e));
            }
        };
        let result = match outcome {
            Ok(()) => match self.send_rows(&mut streams, &slot, &mut split, 0).await {
                Ok(()) => self.end_copy(&mut streams).await,
                Err(e) => {
                    self.abort_shards(&mut streams, &e.fields.message).await;
                    Err(error_bytes(&e))
                }
            },
            Err(Abort::Error(e)) => {
                self.abort_shards(&mut streams, &e.fields.message).await;
                Err(error_bytes(&e))
            }
            Err(Abort::ClientFail(m)) => {
                // Each shard answers the CopyFail with PostgreSQL's own error.
                let first = self.abort_shards(&mut streams, &m).await;
                Err(first.unwrap_or_else(|| {
                    error_bytes(&PgError::error(
                        "57014",
                        format!("COPY from stdin failed: {m}"),
                    ))
                }))
            }
        };
        self.finish_copy(&job, streams, result).await
    }

    /// Sends each shard its buffered rows once at least `min` bytes wait for it.
    async fn send_rows(
        &mut self,
        streams: &mut [Stream],
        slot: &[Option<usize>],
        split: &mut Splitter,
        min: usize,
    ) -> std::result::Result<(), PgError> {
        for (shard, data) in split.take(min) {
            let Some(i) = slot.get(shard).copied().flatten() else {
                return Err(PgError::error(
                    "XX000",
                    format!("internal: a COPY row for shard {shard}, which the COPY does not use"),
                ));
            };
            let mut b = BytesMut::with_capacity(data.len() + 5);
            Frame::new(b'd', data).encode(&mut b);
            let conn = streams[i].co.conn();
            if conn.write_all(&b).await.is_err() {
                conn.broken = true;
                return Err(PgError::error(
                    "08006",
                    format!("lost the connection to shard {shard} during COPY"),
                ));
            }
        }
        Ok(())
    }

    /// CopyDone to every shard and their results: the summed tag, or the first error.
    async fn end_copy(
        &mut self,
        streams: &mut [Stream],
    ) -> std::result::Result<Vec<String>, Bytes> {
        let mut b = BytesMut::new();
        FrontendMessage::CopyDone.encode(&mut b);
        for s in streams.iter_mut() {
            if s.co.conn().write_all(&b).await.is_err() {
                s.co.conn().broken = true;
            }
        }
        let mut notices = BytesMut::new();
        let mut tags = Vec::new();
        let mut error = None;
        for s in streams.iter_mut() {
            if s.co.conn().broken {
                error.get_or_insert_with(|| {
                    error_bytes(&PgError::error(
                        "08006",
                        "lost a shard connection during COPY",
                    ))
                });
                continue;
            }
            match shard_result(s, &mut notices).await {
                Ok(t) => tags.push(t),
                Err(f) => {
                    error.get_or_insert(f);
                }
            }
        }
        self.emit(&notices.split());
        match error {
            Some(e) => Err(e),
            None => Ok(tags),
        }
    }

    /// Stops the COPY on every shard that is still in it; returns the first shard error.
    async fn abort_shards(&mut self, streams: &mut [Stream], why: &str) -> Option<Bytes> {
        let mut b = BytesMut::new();
        FrontendMessage::CopyFail(why.to_string()).encode(&mut b);
        let mut notices = BytesMut::new();
        let mut first = None;
        for s in streams.iter_mut() {
            if s.complete || s.co.conn().broken {
                continue;
            }
            if s.co.conn().write_all(&b).await.is_err() {
                s.co.conn().broken = true;
                continue;
            }
            if let Err(f) = shard_result(s, &mut notices).await {
                first.get_or_insert(f);
            }
        }
        first
    }

    /// Every shard back to ReadyForQuery, the transactions committed (or rolled back on
    /// `result` = error), and the client answered up to ReadyForQuery.
    async fn finish_copy(
        &mut self,
        job: &Job,
        mut streams: Vec<Stream>,
        result: std::result::Result<Vec<String>, Bytes>,
    ) -> Result<()> {
        let mut failed = result.is_err();
        for s in streams.iter_mut() {
            if s.co.conn().broken || s.drain().await.is_err() {
                s.co.conn().broken = true;
                failed = true;
            }
        }
        let failed_before = failed;
        let failed = if job.in_tx {
            self.keep_in_transaction(job, streams, failed).await;
            failed
        } else {
            let failed = self.commit_fanout(job, &mut streams, failed, None).await;
            Stream::release_all(streams);
            failed
        };
        match result {
            Err(e) => self.emit(&e),
            Ok(_) if failed_before => {
                let e = PgError::error(
                    "08006",
                    "lost a shard connection during COPY; nothing was loaded",
                );
                self.emit_error(e, false);
            }
            Ok(tags) if !failed => {
                let tag = if job.replicated {
                    tags.first().cloned().unwrap_or_default()
                } else {
                    sum_tags(&tags)
                };
                self.emit(&super::reply::message(
                    orochi_wire::BackendMessage::CommandComplete(tag),
                ));
            }
            // commit_fanout told the client already.
            Ok(_) => {}
        }
        let status = self.back.local_status();
        self.emit(&ready(status));
        Ok(())
    }

    /// The client's next message, reading more when none is buffered.
    async fn next_client_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = decode_frame(&mut self.front.rbuf, self.front.max_message as usize)? {
                return Ok(f);
            }
            let n = tokio::io::AsyncReadExt::read_buf(&mut self.front.stream, &mut self.front.rbuf)
                .await
                .map_err(RouterError::ClientIo)?;
            if n == 0 {
                return Err(RouterError::ClientIo(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
        }
    }
}

/// A shard's answer to the end of its COPY: its tag, or its error.
async fn shard_result(
    s: &mut Stream,
    notices: &mut BytesMut,
) -> std::result::Result<String, Bytes> {
    loop {
        match s.next(notices).await {
            Ok(Event::Complete(t)) => return Ok(t),
            Ok(Event::Error(f)) => return Err(encoded(&f)),
            Ok(_) => {}
            Err(e) => {
                s.co.conn().broken = true;
                return Err(error_bytes(&e.to_client().unwrap_or_else(|| {
                    PgError::error("08006", "lost a shard connection")
                })));
            }
        }
    }
}

/// A shard's ErrorResponse as it goes to the client.
fn encoded(f: &Frame) -> Bytes {
    let mut b = BytesMut::new();
    f.encode(&mut b);
    b.freeze()
}

/// Where the key column sits among the columns a COPY without a column list reads (the
/// table's columns in order, without dropped and generated ones).
async fn key_position(conn: &mut ServerConn, table: &str, column: &str) -> Result<Option<usize>> {
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let sql = format!(
        "SELECT (SELECT count(*) FROM pg_catalog.pg_attribute a WHERE a.attrelid = k.attrelid \
         AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attnum < k.attnum) \
         FROM pg_catalog.pg_attribute k WHERE k.attrelid = {}::regclass AND k.attname = {} \
         AND NOT k.attisdropped AND k.attgenerated = ''",
        lit(table),
        lit(column)
    );
    match conn.query_rows(&sql).await? {
        Ok((_, rows)) => Ok(rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())),
        Err(e) => Err(RouterError::Pg(e)),
    }
}
