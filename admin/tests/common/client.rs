//! A minimal PostgreSQL client for tests: SCRAM or md5 login, simple queries, and the
//! raw RowDescription (names and type OIDs) that psql would hide.

use bytes::BytesMut;
use orochi_wire::backend::{Authentication, FieldDescription};
use orochi_wire::frontend::sasl_initial;
use orochi_wire::{decode_frame, BackendMessage, ErrorFields, FrontendMessage, StartupRequest};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

/// One statement's result.
#[derive(Debug, Default)]
pub struct Reply {
    pub fields: Vec<FieldDescription>,
    pub rows: Vec<Vec<Option<String>>>,
    pub tags: Vec<String>,
    pub notices: Vec<ErrorFields>,
    pub error: Option<ErrorFields>,
}

impl Reply {
    pub fn names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }
}

impl Client {
    async fn recv(&mut self) -> BackendMessage {
        loop {
            if let Some(f) = decode_frame(&mut self.buf, 1 << 24).unwrap() {
                return BackendMessage::decode(&f).unwrap();
            }
            let n = self.stream.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "server closed the connection");
        }
    }

    async fn send(&mut self, m: FrontendMessage) {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        self.stream.write_all(&b).await.unwrap();
    }

    /// Logs in; `Err` is the server's ErrorResponse.
    pub async fn connect(
        port: u16,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<Client, ErrorFields> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut c = Client {
            stream,
            buf: BytesMut::new(),
        };
        let mut b = BytesMut::new();
        StartupRequest::Startup {
            minor: 0,
            params: vec![("user".into(), user.into()), ("database".into(), db.into())],
        }
        .encode(&mut b);
        c.stream.write_all(&b).await.unwrap();
        let mut scram: Option<ScramSha256> = None;
        loop {
            match c.recv().await {
                BackendMessage::Authentication(Authentication::Md5Password { salt }) => {
                    let stored = orochi_wire::md5::stored_hash(user, password);
                    let resp = orochi_wire::md5::response_from_stored(&stored, &salt);
                    let mut body = resp.into_bytes();
                    body.push(0);
                    c.send(FrontendMessage::Password(body.into())).await;
                }
                BackendMessage::Authentication(Authentication::Sasl { .. }) => {
                    let s = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                    let body = sasl_initial("SCRAM-SHA-256", s.message());
                    scram = Some(s);
                    c.send(FrontendMessage::Password(body)).await;
                }
                BackendMessage::Authentication(Authentication::SaslContinue(data)) => {
                    let s = scram.as_mut().expect("SASL started");
                    s.update(&data).unwrap();
                    let body = s.message().to_vec();
                    c.send(FrontendMessage::Password(body.into())).await;
                }
                BackendMessage::Authentication(Authentication::SaslFinal(data)) => {
                    scram.take().expect("SASL started").finish(&data).unwrap();
                }
                BackendMessage::ErrorResponse(e) => return Err(e),
                BackendMessage::ReadyForQuery(_) => return Ok(c),
                _ => {}
            }
        }
    }

    /// Sends one simple Query and collects everything up to ReadyForQuery.
    pub async fn query(&mut self, sql: &str) -> Reply {
        self.send(FrontendMessage::Query(sql.into())).await;
        self.collect().await
    }

    pub async fn collect(&mut self) -> Reply {
        let mut r = Reply::default();
        loop {
            match self.recv().await {
                BackendMessage::RowDescription(f) => r.fields = f,
                BackendMessage::DataRow(cols) => r.rows.push(
                    cols.into_iter()
                        .map(|c| c.map(|b| String::from_utf8(b.to_vec()).unwrap()))
                        .collect(),
                ),
                BackendMessage::CommandComplete(t) => r.tags.push(t),
                BackendMessage::NoticeResponse(n) => r.notices.push(n),
                BackendMessage::ErrorResponse(e) => r.error = Some(e),
                BackendMessage::ReadyForQuery(_) => return r,
                _ => {}
            }
        }
    }

    pub async fn send_raw(&mut self, m: FrontendMessage) {
        self.send(m).await
    }

    /// The next message, for tests of unsolicited messages (e.g. a FATAL on shutdown).
    pub async fn next(&mut self) -> BackendMessage {
        self.recv().await
    }
}
