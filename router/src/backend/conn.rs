//! One connection to a PostgreSQL server: connect, authenticate, read and write frames,
//! and the session state the router has put on it (parameters, prepared statements).

use crate::error::{Result, RouterError};
use bytes::BytesMut;
use orochi_tls::Stream;
use orochi_wire::backend::Authentication;
use orochi_wire::frontend::sasl_initial;
use orochi_wire::{decode_frame, BackendMessage, Frame, FrontendMessage, PgError, StartupRequest};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    /// Answer a request for the password in cleartext (`allow_server_cleartext_password`).
    pub allow_cleartext: bool,
    pub tls: TargetTls,
    /// Keepalive and user timeout for the socket (`tcp_keepalive`, `tcp_user_timeout`).
    pub tcp: orochi_config::TcpKeepalive,
}

/// TLS towards one server: the pool's `server_tls_sslmode` and the hub holding the
/// current CA and client certificate (re-read on reload, so never part of equality).
#[derive(Clone)]
pub struct TargetTls {
    pub mode: orochi_config::ServerTlsMode,
    pub hub: Arc<orochi_tls::TlsHub>,
}

impl TargetTls {
    /// No TLS (tests, and tools that talk to servers without a config).
    pub fn plain() -> Self {
        TargetTls {
            mode: orochi_config::ServerTlsMode::Disable,
            hub: Arc::new(orochi_tls::TlsHub::disabled()),
        }
    }
}

impl PartialEq for TargetTls {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode && Arc::ptr_eq(&self.hub, &other.hub)
    }
}
impl Eq for TargetTls {}

impl std::fmt::Debug for TargetTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.mode.as_str())
    }
}

impl ServerTarget {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A query's command tag and its rows as text (`None` = NULL).
pub type QueryRows = (String, Vec<Vec<Option<String>>>);

/// Fingerprint of "no parameters set by the router": what a fresh connection has.
pub const EMPTY_PARAMS: u64 = 0;

/// A server connection whose settings are not known: always reset before use.
pub const UNKNOWN_PARAMS: u64 = u64::MAX;

/// Takes a connection back to its login state: settings, session authorization, role.
pub const RESET_SQL: [&str; 3] = ["RESET ALL", "RESET SESSION AUTHORIZATION", "RESET ROLE"];

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What [`ServerConn::pass_through`] does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Copy it and go on.
    Copy,
    /// Copy it and stop: it ends what was asked.
    Last,
    /// Leave it (and the rest) for a closer look.
    Stop,
}

pub struct ServerConn {
    /// Unique per process (SHOW SERVERS, client links).
    pub id: u64,
    /// The router's end of the socket.
    pub local: Option<std::net::SocketAddr>,
    stream: Stream,
    rbuf: BytesMut,
    /// `TLSv1.3/TLS_AES_256_GCM_SHA384`, `None` in plaintext (SHOW SERVERS `tls`).
    pub tls: Option<String>,
    pub addr: String,
    /// The server's own cancel key.
    pub backend_key: (i32, i32),
    /// Values the server reported with ParameterStatus, kept current (`set_param`).
    pub params: HashMap<String, String>,
    /// The version of `params` (`params_version`), equal on connections that report
    /// equal values; 0 until asked for after a change. A session that told its client
    /// every value of one version need not compare them again (`client::reported`).
    params_gen: u64,
    /// Fingerprint of the client parameter set applied with SET (see `client::params`).
    pub applied_params: u64,
    /// Router-named prepared statements (global ids) that exist on this connection, with
    /// when each was last used (a tick of `prepared_tick`), for LRU eviction.
    pub prepared: super::id_hash::IdMap<u64>,
    pub prepared_tick: u64,
    /// SQL-level `PREPARE name` statements on this connection: name -> hash of its text.
    pub sql_prepared: HashMap<String, u64>,
    /// Session state `RESET ALL` cannot undo was left by `owner`: another client gets
    /// this connection only after `DISCARD ALL` (see `pool`).
    pub dirty: bool,
    /// A JWT gateway session's role and claims were set here: before another owner
    /// uses the connection, the pool resets them (see `pool`).
    pub identity: bool,
    /// The client that used the connection last (0: the router itself).
    pub owner: u64,
    /// The connection is unusable (I/O error, protocol desync): close, never reuse.
    pub broken: bool,
    pub created: Instant,
    pub last_used: Instant,
    /// The pool generation this connection belongs to (RECONNECT bumps the pool's).
    pub generation: u64,
    /// Cancel requests on their way to this backend: the pool lends the connection to
    /// another client only once they have arrived (`crate::cancel`).
    pub cancels: super::in_flight::InFlight,
}

impl ServerConn {
    /// Connects and logs in; returns once the server said ReadyForQuery.
    pub async fn connect(target: &ServerTarget, timeout: Duration) -> Result<Self> {
        Self::connect_named(target, timeout, None).await
    }

    /// As [`connect`](Self::connect), announcing `application_name` (health checks
    /// name themselves so operators can tell them apart in `pg_stat_activity` and logs).
    ///
    /// `server_tls_sslmode = allow` is libpq's: a plaintext attempt first and, when the
    /// server answers it with an error before authentication succeeded (a pg_hba.conf
    /// with only `hostssl` for the role says "no encryption"), one more over TLS.
    pub async fn connect_named(
        target: &ServerTarget,
        timeout: Duration,
        application_name: Option<&str>,
    ) -> Result<Self> {
        let mode = target.tls.mode;
        let mut refused = false;
        let first = Self::attempt(target, timeout, application_name, mode, &mut refused).await;
        match first {
            Err(e) if refused && mode == orochi_config::ServerTlsMode::Allow => {
                tracing::debug!(server = %target.addr(), error = %e, "server_tls_sslmode = allow: plaintext login refused, trying TLS");
                let retry = orochi_tls::connect::ALLOW_RETRY;
                Self::attempt(target, timeout, application_name, retry, &mut refused).await
            }
            other => other,
        }
    }

    /// One connection and login with TLS as `mode` says. `refused` becomes true when
    /// the server sent an error before authentication succeeded.
    async fn attempt(
        target: &ServerTarget,
        timeout: Duration,
        application_name: Option<&str>,
        mode: orochi_config::ServerTlsMode,
        refused: &mut bool,
    ) -> Result<Self> {
        let unreachable = |reason: String| RouterError::ServerUnreachable {
            addr: target.addr(),
            reason,
        };
        let stream = tokio::time::timeout(
            timeout,
            TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| {
            unreachable(format!(
                "connect timed out after {} ms",
                timeout.as_millis()
            ))
        })?
        .map_err(|e| unreachable(e.to_string()))?;
        stream.set_nodelay(true).ok();
        super::sockopt::apply(&stream, &target.tcp);
        let local = stream.local_addr().ok();
        let side = target.tls.hub.server();
        let upgrade = orochi_tls::connect::upgrade(stream, &target.host, mode, &side);
        let stream = tokio::time::timeout(timeout, upgrade)
            .await
            .map_err(|_| {
                unreachable(format!(
                    "TLS handshake timed out after {} ms",
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| RouterError::ServerTls {
                addr: target.addr(),
                reason: format!("server_tls_sslmode = {}: {e}", target.tls.mode.as_str()),
                client_reason: e.client_reason(),
            })?;
        let mut conn = ServerConn {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            local,
            tls: stream.describe(),
            stream,
            rbuf: BytesMut::with_capacity(8192),
            addr: target.addr(),
            backend_key: (0, 0),
            params: HashMap::new(),
            params_gen: 0,
            applied_params: EMPTY_PARAMS,
            prepared: Default::default(),
            prepared_tick: 0,
            sql_prepared: HashMap::new(),
            dirty: false,
            identity: false,
            owner: 0,
            broken: false,
            cancels: Default::default(),
            created: Instant::now(),
            last_used: Instant::now(),
            generation: 0,
        };
        tokio::time::timeout(timeout, conn.login(target, application_name, refused))
            .await
            .map_err(|_| {
                unreachable(format!("login timed out after {} ms", timeout.as_millis()))
            })??;
        Ok(conn)
    }

    /// Startup and authentication up to ReadyForQuery. `refused` is set when the server
    /// sends an error before AuthenticationOk (what libpq's `allow` retries over TLS).
    async fn login(
        &mut self,
        t: &ServerTarget,
        application_name: Option<&str>,
        refused: &mut bool,
    ) -> Result<()> {
        let mut authenticated = false;
        let mut out = BytesMut::new();
        let mut params = vec![
            ("user".into(), t.user.clone()),
            ("database".into(), t.database.clone()),
        ];
        if let Some(name) = application_name {
            params.push(("application_name".into(), name.to_string()));
        }
        StartupRequest::Startup { minor: 0, params }.encode(&mut out);
        self.write_all(&out).await?;
        let mut scram: Option<ScramSha256> = None;
        let need_password = || {
            RouterError::ServerAuth(PgError::fatal(
                "28P01",
                format!("server asks for a password for user \"{}\" but none is configured (set server_password)", t.user),
            ))
        };
        loop {
            let frame = self.read_frame().await?;
            let msg = BackendMessage::decode(&frame)?;
            let mut reply = BytesMut::new();
            match msg {
                BackendMessage::Authentication(a) => match a {
                    Authentication::Ok => authenticated = true,
                    Authentication::CleartextPassword => {
                        if !t.allow_cleartext {
                            return Err(RouterError::ServerAuth(PgError::fatal(
                                "28000",
                                format!("server {} asks for the password in cleartext, which allow_server_cleartext_password = false refuses (configure SCRAM or md5 for user \"{}\" in its pg_hba.conf)", t.addr(), t.user),
                            )));
                        }
                        let pw = t.password.as_deref().ok_or_else(need_password)?;
                        let mut body = pw.as_bytes().to_vec();
                        body.push(0);
                        FrontendMessage::Password(body.into()).encode(&mut reply);
                    }
                    Authentication::Md5Password { salt } => {
                        let pw = t.password.as_deref().ok_or_else(need_password)?;
                        let resp = if pw.len() == 35 && pw.starts_with("md5") {
                            orochi_wire::md5::response_from_stored(pw, &salt)
                        } else {
                            postgres_protocol::authentication::md5_hash(
                                t.user.as_bytes(),
                                pw.as_bytes(),
                                salt,
                            )
                        };
                        let mut body = resp.into_bytes();
                        body.push(0);
                        FrontendMessage::Password(body.into()).encode(&mut reply);
                    }
                    Authentication::Sasl { mechanisms } => {
                        if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                            return Err(RouterError::ServerAuth(PgError::fatal(
                                "28000",
                                format!(
                                    "server offers no supported SASL mechanism: {mechanisms:?}"
                                ),
                            )));
                        }
                        let pw = t.password.as_deref().ok_or_else(need_password)?;
                        let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                        FrontendMessage::Password(sasl_initial("SCRAM-SHA-256", s.message()))
                            .encode(&mut reply);
                        scram = Some(s);
                    }
                    Authentication::SaslContinue(data) => {
                        let s = scram.as_mut().ok_or(RouterError::Protocol(
                            orochi_wire::WireError::Invalid("unexpected SASL continue"),
                        ))?;
                        s.update(&data).map_err(|e| {
                            RouterError::ServerAuth(PgError::fatal("28000", e.to_string()))
                        })?;
                        FrontendMessage::Password(s.message().to_vec().into()).encode(&mut reply);
                    }
                    Authentication::SaslFinal(data) => {
                        let mut s = scram.take().ok_or(RouterError::Protocol(
                            orochi_wire::WireError::Invalid("unexpected SASL final"),
                        ))?;
                        s.finish(&data).map_err(|e| {
                            RouterError::ServerAuth(PgError::fatal("28000", e.to_string()))
                        })?;
                    }
                },
                BackendMessage::ParameterStatus { name, value } => {
                    self.set_param(name, value);
                }
                BackendMessage::BackendKeyData {
                    process_id,
                    secret_key,
                } => self.backend_key = (process_id, secret_key),
                BackendMessage::ReadyForQuery(_) => return Ok(()),
                BackendMessage::ErrorResponse(fields) => {
                    *refused = !authenticated;
                    return Err(RouterError::ServerAuth(PgError { fields }));
                }
                BackendMessage::NoticeResponse(_)
                | BackendMessage::NegotiateProtocolVersion { .. } => {}
                other => {
                    return Err(RouterError::ServerLost {
                        addr: self.addr.clone(),
                        reason: format!("unexpected message during login: {other:?}"),
                    })
                }
            }
            if !reply.is_empty() {
                self.write_all(&reply).await?;
            }
        }
    }

    fn lost(&mut self, reason: impl ToString) -> RouterError {
        self.broken = true;
        RouterError::ServerLost {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.stream.write_all_now(bytes).await {
            return Err(self.lost(e));
        }
        Ok(())
    }

    /// Copies the complete messages at the front of the read buffer to `out` for as
    /// long as `pass(tag)` lets them through, in one copy and with no frame each (a
    /// result's DataRows: issue 16, CPU per message). Returns the bytes moved and
    /// whether the run ended on a [`Pass::Last`]. A bad length stops the run;
    /// `next_buffered` reports it.
    pub fn pass_through(&mut self, out: &mut BytesMut, pass: impl Fn(u8) -> Pass) -> (usize, bool) {
        let mut end = 0;
        let mut last = false;
        while let Ok(Some((tag, total))) =
            orochi_wire::frame::peek_frame(&self.rbuf[end..], orochi_wire::MAX_MESSAGE_LEN)
        {
            match pass(tag) {
                Pass::Stop => break,
                Pass::Copy => end += total,
                Pass::Last => {
                    end += total;
                    last = true;
                    break;
                }
            }
        }
        if end > 0 {
            out.extend_from_slice(&self.rbuf[..end]);
            bytes::Buf::advance(&mut self.rbuf, end);
        }
        (end, last)
    }

    /// Takes the next complete message out of the read buffer when its body fits
    /// `buf` and it is neither an error nor a ParameterStatus (those are read as
    /// frames): its tag and body length. Saves a frame's reference counting for the
    /// short messages every statement ends with (issue 16).
    pub fn next_small<const N: usize>(&mut self, buf: &mut [u8; N]) -> Option<(u8, usize)> {
        let (tag, total) =
            orochi_wire::frame::peek_frame(&self.rbuf, orochi_wire::MAX_MESSAGE_LEN).ok()??;
        let len = total - 5;
        if len > N || matches!(tag, b'E' | b'S') {
            return None;
        }
        buf[..len].copy_from_slice(&self.rbuf[5..total]);
        bytes::Buf::advance(&mut self.rbuf, total);
        Some((tag, len))
    }

    /// Next complete frame already buffered, without I/O.
    pub fn next_buffered(&mut self) -> Result<Option<Frame>> {
        match decode_frame(&mut self.rbuf, orochi_wire::MAX_MESSAGE_LEN) {
            Ok(f) => Ok(f),
            Err(e) => {
                self.broken = true;
                Err(e.into())
            }
        }
    }

    /// Reads more bytes into the buffer; an EOF is a lost connection. Cancel safe.
    pub async fn fill(&mut self) -> Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(8192);
        }
        match self.stream.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(self.lost("server closed the connection")),
            Ok(_) => Ok(()),
            Err(e) => Err(self.lost(e)),
        }
    }

    pub async fn read_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(f) = self.next_buffered()? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// Runs SQL whose results nobody wants (session setup, cleanup), up to ReadyForQuery.
    /// Returns the server's error, if it sent one; tracks ParameterStatus.
    pub async fn run_silent(&mut self, sql: &str) -> Result<Option<PgError>> {
        let mut out = BytesMut::new();
        orochi_wire::frontend::encode_query(sql, &mut out);
        self.write_all(&out).await?;
        let mut error = None;
        loop {
            let f = self.read_frame().await?;
            match f.tag {
                b'Z' => return Ok(error),
                b'E' => {
                    if let Ok(BackendMessage::ErrorResponse(fields)) = BackendMessage::decode(&f) {
                        error = Some(PgError { fields });
                    }
                }
                b'S' => self.track_parameter(&f),
                _ => {}
            }
        }
    }

    /// Runs one simple query and returns its first row as text (`None` = SQL NULL).
    /// A server error comes back as `RouterError::Pg`. For the router's own queries
    /// (health checks), never for client traffic.
    pub async fn first_row(&mut self, sql: &str) -> Result<Vec<Option<String>>> {
        let mut out = BytesMut::new();
        orochi_wire::frontend::encode_query(sql, &mut out);
        self.write_all(&out).await?;
        let mut row = None;
        let mut error = None;
        loop {
            let f = self.read_frame().await?;
            match f.tag {
                b'Z' => break,
                b'D' if row.is_none() => {
                    if let BackendMessage::DataRow(cols) = BackendMessage::decode(&f)? {
                        row = Some(
                            cols.into_iter()
                                .map(|c| c.map(|b| String::from_utf8_lossy(&b).into_owned()))
                                .collect::<Vec<_>>(),
                        );
                    }
                }
                b'E' => {
                    if let Ok(BackendMessage::ErrorResponse(fields)) = BackendMessage::decode(&f) {
                        error = Some(PgError { fields });
                    }
                }
                _ => {}
            }
        }
        match (error, row) {
            (Some(e), _) => Err(RouterError::Pg(e)),
            (None, Some(r)) => Ok(r),
            (None, None) => Err(RouterError::ServerLost {
                addr: self.addr.clone(),
                reason: format!("no row returned by {sql:?}"),
            }),
        }
    }

    /// Says goodbye (Terminate) so the server logs a clean disconnect, then closes.
    pub async fn terminate(mut self) {
        let mut out = BytesMut::new();
        FrontendMessage::Terminate.encode(&mut out);
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.shutdown().await;
    }

    /// Runs a query and returns the first column of its first row, as text.
    pub async fn query_one(&mut self, sql: &str) -> Result<Option<String>> {
        Ok(match self.query_rows(sql).await? {
            Ok((_, rows)) => rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten()),
            Err(_) => None,
        })
    }

    /// Runs one simple query: its command tag (the last one) and rows as text, or the
    /// server's error. An I/O failure is the outer error.
    pub async fn query_rows(
        &mut self,
        sql: &str,
    ) -> Result<std::result::Result<QueryRows, PgError>> {
        let mut b = BytesMut::new();
        orochi_wire::frontend::encode_query(sql, &mut b);
        self.write_all(&b).await?;
        let mut rows = Vec::new();
        let mut tag = String::new();
        let mut error = None;
        loop {
            let f = self.read_frame().await?;
            match f.tag {
                b'D' => {
                    if let Ok(BackendMessage::DataRow(cols)) = BackendMessage::decode(&f) {
                        rows.push(
                            cols.into_iter()
                                .map(|c| c.map(|v| String::from_utf8_lossy(&v).into_owned()))
                                .collect(),
                        );
                    }
                }
                b'C' => {
                    if let Ok(BackendMessage::CommandComplete(t)) = BackendMessage::decode(&f) {
                        tag = t;
                    }
                }
                b'E' => {
                    if let Ok(BackendMessage::ErrorResponse(fields)) = BackendMessage::decode(&f) {
                        error.get_or_insert(PgError { fields });
                    }
                }
                b'S' => self.track_parameter(&f),
                b'Z' => {
                    return Ok(match error {
                        Some(e) => Err(e),
                        None => Ok((tag, rows)),
                    })
                }
                _ => {}
            }
        }
    }

    /// Records a ParameterStatus frame's value.
    pub fn track_parameter(&mut self, f: &Frame) {
        if let Ok(BackendMessage::ParameterStatus { name, value }) = BackendMessage::decode(f) {
            self.set_param(name, value);
        }
    }

    /// Records a value the server reported; a change forgets the version of `params`.
    pub fn set_param(&mut self, name: String, value: String) {
        if self.params.get(&name) != Some(&value) {
            self.params.insert(name, value);
            self.params_gen = 0;
        }
    }

    /// The version of `params`, never 0: equal for connections whose servers reported
    /// equal values (see `params_version`).
    pub fn params_version(&mut self) -> u64 {
        if self.params_gen == 0 {
            self.params_gen = super::params_version::version_of(&self.params);
        }
        self.params_gen
    }

    /// True when the idle connection still looks usable: nothing is waiting to be read
    /// (an idle server only speaks to say it is going away) and no error was seen.
    pub fn looks_alive(&mut self) -> bool {
        if self.broken || !self.rbuf.is_empty() {
            return false;
        }
        self.stream.is_quiet()
    }

    /// Records a use of router statement `id` (prepared now, or found prepared).
    pub fn touch_prepared(&mut self, id: u64) {
        self.prepared_tick += 1;
        self.prepared.insert(id, self.prepared_tick);
    }

    /// Records a use of router statement `id` if this connection has it; whether it has.
    pub fn touch_if_prepared(&mut self, id: u64) -> bool {
        let Some(t) = self.prepared.get_mut(&id) else {
            return false;
        };
        self.prepared_tick += 1;
        *t = self.prepared_tick;
        true
    }

    /// The least recently used router statement, when more than `max` are prepared:
    /// the caller closes it on the server and forgets it.
    pub fn prepared_to_evict(&mut self, max: usize) -> Option<u64> {
        if self.prepared.len() <= max {
            return None;
        }
        let (&id, _) = self.prepared.iter().min_by_key(|(_, &t)| t)?;
        self.prepared.remove(&id);
        Some(id)
    }

    /// Forgets what a `DISCARD ALL` removes.
    pub fn forget_session_state(&mut self) {
        self.applied_params = EMPTY_PARAMS;
        self.prepared.clear();
        self.sql_prepared.clear();
        self.dirty = false;
        self.identity = false;
    }

    /// Drops buffers grown by a large result so an idle connection stays small.
    pub fn shrink(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 64 * 1024 {
            self.rbuf = BytesMut::with_capacity(8192);
        }
    }
}
