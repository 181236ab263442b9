//! A connection that is plain TCP or TLS, in either role, behind one type so sessions
//! and server connections need not be generic over it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub enum Stream {
    Plain(TcpStream),
    /// The router is the TLS server (a client's connection).
    Accepted(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// The router is the TLS client (a connection to PostgreSQL).
    Connected(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

fn version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        other => format!("{other:?}"),
    }
}

/// OpenSSL's name of a cipher suite, as PgBouncer prints it.
fn suite_name(s: rustls::CipherSuite) -> String {
    let name = s.as_str().map(str::to_string).unwrap_or(format!("{s:?}"));
    if let Some(rest) = name.strip_prefix("TLS13_") {
        return format!("TLS_{rest}");
    }
    // TLS 1.2: TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 -> ECDHE-RSA-AES256-GCM-SHA384
    let Some(rest) = name.strip_prefix("TLS_") else {
        return name;
    };
    let (kx, cipher) = rest.split_once("_WITH_").unwrap_or(("", rest));
    let cipher = cipher
        .replace("AES_128", "AES128")
        .replace("AES_256", "AES256")
        .replace("CHACHA20_POLY1305_SHA256", "CHACHA20_POLY1305");
    format!("{kx}-{cipher}").replace('_', "-")
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Accepted(s) => s.get_ref().0,
            Stream::Connected(s) => s.get_ref().0,
        }
    }

    /// PgBouncer's `tls` column: `TLSv1.3/TLS_AES_256_GCM_SHA384`; `None` when plain.
    pub fn describe(&self) -> Option<String> {
        let (version, suite) = match self {
            Stream::Plain(_) => return None,
            Stream::Accepted(s) => (
                s.get_ref().1.protocol_version()?,
                s.get_ref().1.negotiated_cipher_suite()?,
            ),
            Stream::Connected(s) => (
                s.get_ref().1.protocol_version()?,
                s.get_ref().1.negotiated_cipher_suite()?,
            ),
        };
        Some(format!(
            "{}/{}",
            version_name(version),
            suite_name(suite.suite())
        ))
    }

    /// The ALPN protocol agreed with a client.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::Accepted(s) => s.get_ref().1.alpn_protocol(),
            Stream::Connected(s) => s.get_ref().1.alpn_protocol(),
            Stream::Plain(_) => None,
        }
    }

    /// Waits until the peer sent something and reads it (cancel-safe). The buffer gets
    /// space only once bytes are there, so idle clients hold none: `lend` gives `buf`
    /// memory first (the router's spare buffers), then room is reserved. Under TLS the
    /// wait is for the socket too, unless rustls already holds data to read (or the
    /// peer's close): an idle TLS client held a lent buffer while it waited.
    ///
    /// The read goes through `AsyncRead`, not `try_read_buf`: a read that leaves the
    /// buffer partly empty tells tokio the socket is drained (edge-triggered epoll), so
    /// the next wait does not start with a `recv` that returns EAGAIN — one system call
    /// per transaction fewer, PgBouncer's count (README, Benchmarks).
    pub async fn read_ready(
        &mut self,
        buf: &mut bytes::BytesMut,
        lend: fn(&mut bytes::BytesMut),
    ) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.readable().await?,
            Stream::Accepted(s) => {
                if !tls_has_input(s.get_mut().1) {
                    s.get_ref().0.readable().await?;
                }
            }
            Stream::Connected(s) => {
                if !tls_has_input(s.get_mut().1) {
                    s.get_ref().0.readable().await?;
                }
            }
        }
        lend(buf);
        buf.reserve(4096);
        self.read_buf(buf).await
    }

    /// Writes as much of `buf` as the socket takes now, without waiting, and returns how
    /// much that was. A plain socket is written with `try_write`: the runtime's
    /// readiness is read, with no waker registered and no task budget spent, which is
    /// all a write to a socket with room costs (issue 16: two writes a transaction).
    /// Over TLS nothing is written here (0); the caller's `write_all` does it all.
    pub fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Stream::Plain(s) = self else {
            return Ok(0);
        };
        let mut done = 0;
        while done < buf.len() {
            match s.try_write(&buf[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Writes all of `buf`: what the socket takes now first ([`Stream::write_now`]),
    /// then the rest as the socket drains.
    pub async fn write_all_now(&mut self, buf: &[u8]) -> io::Result<()> {
        let done = self.write_now(buf)?;
        if done < buf.len() {
            tokio::io::AsyncWriteExt::write_all(self, &buf[done..]).await?;
        }
        Ok(())
    }

    /// True when nothing is waiting to be read and the peer has not closed: an idle
    /// pooled connection that is still good. Every checkout asks (issue 16, CPU per
    /// transaction): the runtime's readiness is read first, without registering a waker,
    /// and a socket it saw nothing on is quiet without a system call; otherwise one byte
    /// is peeked, as [`Stream::poll_hung_up`] does (a would-block clears the readiness).
    pub fn is_quiet(&self) -> bool {
        let tcp = self.tcp();
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match tcp.try_io(tokio::io::Interest::READABLE, || {
            socket2::SockRef::from(tcp).peek(&mut byte)
        }) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            // Bytes waiting, or the end of the stream.
            Ok(_) => false,
        }
    }

    /// Whether the peer has gone, asked of a socket the caller is not reading: `Ready(true)`
    /// at end of stream or a socket error, `Ready(false)` once bytes wait to be read (the
    /// caller reads them later and should stop asking: the answer would stay ready),
    /// `Pending` while nothing arrives (`cx` is woken when something does). Looks at the
    /// TCP socket under TLS too: a peer that closes after its `close_notify` is seen as
    /// bytes first, and so as not gone, which only errs on the side of waiting.
    pub fn poll_hung_up(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut byte = [0u8; 1];
        let mut rb = ReadBuf::new(&mut byte);
        match self.tcp().poll_peek(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(true),
            Poll::Ready(Ok(_)) => Poll::Ready(false),
        }
    }
}

/// Whether a read would find something without the socket: plaintext rustls decrypted
/// already, the peer's close_notify, or an error (the read reports it).
fn tls_has_input<D>(c: &mut rustls::ConnectionCommon<D>) -> bool {
    c.process_new_packets().map_or(true, |io| {
        io.plaintext_bytes_to_read() > 0 || io.peer_has_closed()
    })
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Accepted(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Connected(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, b),
            Stream::Accepted(s) => Pin::new(s.as_mut()).poll_write(cx, b),
            Stream::Connected(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Accepted(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Connected(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Accepted(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Connected(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Accepted(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Connected(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Accepted(s) => s.is_write_vectored(),
            Stream::Connected(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{suite_name, Stream};
    use rustls::CipherSuite;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected loopback pair: the peer's end, and ours as a plain `Stream`.
    async fn pair() -> (TcpStream, Stream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        (peer, Stream::Plain(ours))
    }

    fn hung_up_now(s: &Stream) -> Poll<bool> {
        s.poll_hung_up(&mut Context::from_waker(Waker::noop()))
    }

    /// Polls until the peer's bytes or end of stream have reached our socket.
    async fn settled(s: &Stream) -> Poll<bool> {
        for _ in 0..200 {
            if let Poll::Ready(b) = hung_up_now(s) {
                return Poll::Ready(b);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Poll::Pending
    }

    #[tokio::test]
    async fn a_silent_peer_is_quiet_and_not_gone() {
        let (_peer, ours) = pair().await;
        assert!(ours.is_quiet());
        assert_eq!(hung_up_now(&ours), Poll::Pending);
    }

    #[tokio::test]
    async fn bytes_waiting_are_not_a_hang_up_but_not_quiet_either() {
        let (mut peer, ours) = pair().await;
        peer.write_all(b"Q").await.unwrap();
        assert_eq!(settled(&ours).await, Poll::Ready(false));
        assert!(!ours.is_quiet());
    }

    #[tokio::test]
    async fn a_closed_peer_has_hung_up() {
        let (peer, ours) = pair().await;
        drop(peer);
        assert_eq!(settled(&ours).await, Poll::Ready(true));
        assert!(!ours.is_quiet());
    }

    /// `write_all_now` writes what the socket takes at once, and waits for room for the
    /// rest: 4 MiB to a peer that has not read yet is more than the sockets hold, so
    /// `write_now` stops short (a would-block, not an error), and every byte arrives in
    /// order once the peer reads. Over TLS `write_now` leaves it all to `write_all`.
    #[tokio::test]
    async fn writes_go_out_now_and_the_rest_when_the_peer_reads() {
        use tokio::io::AsyncReadExt;
        let (mut peer, mut ours) = pair().await;
        assert_eq!(ours.write_now(b"hello").unwrap(), 5);
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");

        // Socket buffers of a fixed size on both ends (no autotuning), so that 4 MiB
        // cannot fit in them.
        socket2::SockRef::from(ours.tcp())
            .set_send_buffer_size(64 << 10)
            .unwrap();
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(64 << 10)
            .unwrap();
        let big: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let short = ours.write_now(&big).unwrap();
        assert!(short > 0 && short < big.len(), "{short}");
        let rest = big[short..].to_vec();
        let writer = tokio::spawn(async move { ours.write_all_now(&rest).await.map(|()| ours) });
        let mut read = vec![0u8; big.len()];
        peer.read_exact(&mut read).await.unwrap();
        assert!(read == big, "the bytes arrive whole and in order");
        writer.await.unwrap().unwrap();

        let (mut client, mut tls) = tls_pair().await;
        assert_eq!(tls.write_now(b"x").unwrap(), 0);
        tls.write_all_now(b"hello").await.unwrap();
        tokio::io::AsyncWriteExt::flush(&mut tls).await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    /// A TLS pair over loopback: the client's end, and ours as the router's accepted
    /// `Stream`.
    async fn tls_pair() -> (tokio_rustls::client::TlsStream<TcpStream>, Stream) {
        use std::sync::Arc;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect("localhost".try_into().unwrap(), tcp)
                .await
                .unwrap()
        };
        let accept = async {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(server))
                .accept(tcp)
                .await
                .unwrap()
        };
        let (peer, ours) = tokio::join!(connect, accept);
        (peer, Stream::Accepted(Box::new(ours)))
    }

    static LENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn lend(b: &mut bytes::BytesMut) {
        LENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b.reserve(16 * 1024);
    }

    /// An idle TLS client holds no buffer while the router waits for it (it held a lent
    /// 16 KiB one: 29.5 KiB per idle TLS client against 14 now, `make bench`), and what
    /// it sends, or its close, is read as before.
    #[tokio::test]
    async fn an_idle_tls_client_waits_without_a_buffer() {
        use std::sync::atomic::Ordering::Relaxed;
        let (mut peer, mut ours) = tls_pair().await;
        let mut buf = bytes::BytesMut::new();
        let waited =
            tokio::time::timeout(Duration::from_millis(200), ours.read_ready(&mut buf, lend)).await;
        assert!(waited.is_err(), "nothing was sent");
        assert_eq!((LENT.load(Relaxed), buf.capacity()), (0, 0));
        peer.write_all(b"hello").await.unwrap();
        peer.flush().await.unwrap();
        let n = ours.read_ready(&mut buf, lend).await.unwrap();
        assert_eq!((n, &buf[..], LENT.load(Relaxed)), (5, &b"hello"[..], 1));
        peer.shutdown().await.unwrap();
        buf.clear();
        let n = tokio::time::timeout(Duration::from_secs(5), ours.read_ready(&mut buf, lend))
            .await
            .expect("the close is seen");
        assert_eq!(n.unwrap(), 0);
    }

    #[test]
    fn suites_get_openssl_names() {
        assert_eq!(
            suite_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            suite_name(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
            "ECDHE-RSA-AES256-GCM-SHA384"
        );
        assert_eq!(
            suite_name(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        );
    }
}
