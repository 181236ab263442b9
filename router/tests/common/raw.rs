//! A tiny hand-written protocol client: exact control over which messages go out and
//! when, for the pipelining and protocol edge cases no driver lets us produce.

use bytes::BytesMut;
use orochi_wire::backend::Authentication;
use orochi_wire::{decode_frame, BackendMessage, ErrorFields, FrontendMessage, StartupRequest};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single read may take before the test fails.
pub const READ_LIMIT: Duration = Duration::from_secs(15);

/// Over TCP by default; the TLS tests run it over a TLS stream.
pub struct RawClient<S = TcpStream> {
    pub stream: S,
    buf: BytesMut,
    /// BackendKeyData from the login.
    pub key: (i32, i32),
    /// ParameterStatus values seen at login.
    pub params: HashMap<String, String>,
}

/// One-letter tag of a backend message, for compact assertions ("12DCZ").
pub fn tag(m: &BackendMessage) -> char {
    let mut b = BytesMut::new();
    m.encode(&mut b);
    b[0] as char
}

pub fn tags(ms: &[BackendMessage]) -> String {
    ms.iter().map(tag).collect()
}

/// The first ErrorResponse among `ms`.
pub fn first_error(ms: &[BackendMessage]) -> Option<&ErrorFields> {
    ms.iter().find_map(|m| match m {
        BackendMessage::ErrorResponse(e) => Some(e),
        _ => None,
    })
}

/// Every DataRow's first column as text.
pub fn first_column(ms: &[BackendMessage]) -> Vec<String> {
    ms.iter()
        .filter_map(|m| match m {
            BackendMessage::DataRow(cols) => Some(
                cols.first()
                    .and_then(|c| c.as_ref())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            ),
            _ => None,
        })
        .collect()
}

/// The ReadyForQuery status byte of the last message, if it is one.
pub fn ready_status(ms: &[BackendMessage]) -> Option<u8> {
    match ms.last() {
        Some(BackendMessage::ReadyForQuery(s)) => Some(*s),
        _ => None,
    }
}

pub fn parse(name: &str, query: &str) -> FrontendMessage {
    FrontendMessage::Parse {
        name: name.into(),
        query: query.into(),
        param_types: vec![],
    }
}

/// Bind with text parameters.
pub fn bind(portal: &str, statement: &str, params: &[&str]) -> FrontendMessage {
    FrontendMessage::Bind {
        portal: portal.into(),
        statement: statement.into(),
        param_formats: vec![],
        params: params
            .iter()
            .map(|p| Some(bytes::Bytes::copy_from_slice(p.as_bytes())))
            .collect(),
        result_formats: vec![],
    }
}

pub fn execute(portal: &str, max_rows: i32) -> FrontendMessage {
    FrontendMessage::Execute {
        portal: portal.into(),
        max_rows,
    }
}

pub fn describe(kind: u8, name: &str) -> FrontendMessage {
    FrontendMessage::Describe {
        kind,
        name: name.into(),
    }
}

pub fn close(kind: u8, name: &str) -> FrontendMessage {
    FrontendMessage::Close {
        kind,
        name: name.into(),
    }
}

impl RawClient {
    /// Logs in as a user that needs no password. `Err` carries the server's error.
    pub async fn connect(
        port: u16,
        user: &str,
        db: &str,
        extra: &[(&str, &str)],
    ) -> Result<RawClient, ErrorFields> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("TCP connect to router");
        stream.set_nodelay(true).ok();
        RawClient::login(stream, user, db, extra).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    /// Logs in over an open stream as a user that needs no password.
    pub async fn login(
        stream: S,
        user: &str,
        db: &str,
        extra: &[(&str, &str)],
    ) -> Result<RawClient<S>, ErrorFields> {
        RawClient::login_password(stream, user, db, extra, None).await
    }

    /// Logs in, answering a cleartext password request with `password` (the JWT
    /// gateway asks for one).
    pub async fn login_password(
        stream: S,
        user: &str,
        db: &str,
        extra: &[(&str, &str)],
        password: Option<&str>,
    ) -> Result<RawClient<S>, ErrorFields> {
        let mut params = vec![
            ("user".to_string(), user.to_string()),
            ("database".to_string(), db.to_string()),
        ];
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut c = RawClient {
            stream,
            buf: BytesMut::new(),
            key: (0, 0),
            params: HashMap::new(),
        };
        let mut b = BytesMut::new();
        StartupRequest::Startup { minor: 0, params }.encode(&mut b);
        c.send_raw(&b).await;
        loop {
            match c.recv().await {
                Some(BackendMessage::Authentication(Authentication::Ok)) => {}
                Some(BackendMessage::Authentication(Authentication::CleartextPassword))
                    if password.is_some() =>
                {
                    let mut body = password.unwrap_or_default().as_bytes().to_vec();
                    body.push(0);
                    c.send(&[FrontendMessage::Password(body.into())]).await;
                }
                Some(BackendMessage::Authentication(other)) => {
                    panic!("raw client only supports trust users, got {other:?}")
                }
                Some(BackendMessage::ParameterStatus { name, value }) => {
                    c.params.insert(name, value);
                }
                Some(BackendMessage::BackendKeyData {
                    process_id,
                    secret_key,
                }) => c.key = (process_id, secret_key),
                Some(BackendMessage::ReadyForQuery(_)) => return Ok(c),
                Some(BackendMessage::ErrorResponse(e)) => return Err(e),
                Some(BackendMessage::NoticeResponse(_)) => {}
                Some(other) => panic!("unexpected message during login: {other:?}"),
                None => panic!("router closed the connection during login"),
            }
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to router");
    }

    pub async fn send(&mut self, msgs: &[FrontendMessage]) {
        let mut b = BytesMut::new();
        for m in msgs {
            m.encode(&mut b);
        }
        self.send_raw(&b).await;
    }

    /// The next message; `None` when the router closed the connection.
    pub async fn recv(&mut self) -> Option<BackendMessage> {
        match tokio::time::timeout(READ_LIMIT, self.recv_inner()).await {
            Ok(m) => m,
            Err(_) => panic!("no message from the router within {READ_LIMIT:?}"),
        }
    }

    /// The next message if one arrives within `d`; `Err(())` on timeout.
    pub async fn recv_within(&mut self, d: Duration) -> Result<Option<BackendMessage>, ()> {
        tokio::time::timeout(d, self.recv_inner())
            .await
            .map_err(|_| ())
    }

    async fn recv_inner(&mut self) -> Option<BackendMessage> {
        loop {
            match decode_frame(&mut self.buf, orochi_wire::MAX_MESSAGE_LEN) {
                Ok(Some(f)) => {
                    return Some(
                        BackendMessage::decode(&f)
                            .unwrap_or_else(|e| panic!("undecodable backend message: {e}")),
                    )
                }
                Ok(None) => {}
                Err(e) => panic!("bad frame from router: {e}"),
            }
            self.buf.reserve(8192);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Messages up to and including the next ReadyForQuery (panics if the connection closes).
    pub async fn until_ready(&mut self) -> Vec<BackendMessage> {
        let mut out = Vec::new();
        loop {
            match self.recv().await {
                Some(m) => {
                    let done = matches!(m, BackendMessage::ReadyForQuery(_));
                    out.push(m);
                    if done {
                        return out;
                    }
                }
                None => panic!(
                    "router closed the connection before ReadyForQuery; got {}",
                    tags(&out)
                ),
            }
        }
    }

    /// Exactly `n` messages.
    pub async fn take(&mut self, n: usize) -> Vec<BackendMessage> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.recv().await {
                Some(m) => out.push(m),
                None => panic!("connection closed after {}", tags(&out)),
            }
        }
        out
    }

    /// Simple query, up to ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> Vec<BackendMessage> {
        self.send(&[FrontendMessage::Query(sql.into())]).await;
        self.until_ready().await
    }

    /// Simple query that must succeed; returns the first column of every row.
    pub async fn rows(&mut self, sql: &str) -> Vec<String> {
        let ms = self.query(sql).await;
        if let Some(e) = first_error(&ms) {
            panic!("{sql}: {} {}", e.code, e.message);
        }
        first_column(&ms)
    }

    /// Everything until the router closes the connection (bounded by READ_LIMIT per message).
    pub async fn until_closed(&mut self) -> Vec<BackendMessage> {
        let mut out = Vec::new();
        while let Some(m) = self.recv().await {
            out.push(m);
        }
        out
    }

    /// Sends a CancelRequest for this client's key on a new connection.
    pub async fn cancel(&self, port: u16) {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect for cancel");
        let mut b = BytesMut::new();
        StartupRequest::Cancel {
            process_id: self.key.0,
            secret_key: self.key.1,
        }
        .encode(&mut b);
        s.write_all(&b).await.expect("send CancelRequest");
        // The router closes the connection when done; wait for that.
        let mut sink = [0u8; 16];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut sink)).await;
    }
}
