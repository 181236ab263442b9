//! A fault-injecting TCP proxy on loopback, put between the router and one shard.
//!
//! Real networks fail in ways a stopped PostgreSQL does not show: packets that vanish,
//! resets, peers that stop reading, servers that accept and never speak. This proxy
//! forwards bytes both ways and, on command, injects one of those faults into the
//! connections it carries (and the ones it accepts next), so the router's bounds can be
//! tested against real servers behind it.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes flow both ways.
    None,
    /// Every chunk waits this long before it is passed on.
    Latency(Duration),
    /// Bytes are read and dropped, both ways; nothing is closed.
    Blackhole,
    /// Every connection is reset (RST), and new ones are reset at once.
    Reset,
    /// The proxy stops reading either side: a peer that vanished without a FIN.
    HalfOpen,
    /// New connections are accepted but never reach the server: a server that never
    /// answers the startup. Connections already open keep working.
    MuteStartup,
    /// New connections reach the server this much later (their bytes wait); connections
    /// already open keep working: a slow connect, as a cancel request can meet.
    SlowNew(Duration),
}

pub struct FaultProxy {
    pub port: u16,
    set: Arc<watch::Sender<Fault>>,
    task: tokio::task::JoinHandle<()>,
    openings: Openings,
}

/// The first bytes (up to 8) each carried connection sent towards the server, in the
/// order the connections came: what kind of request opened it (startup, SSLRequest,
/// CancelRequest) without decoding anything else.
type Openings = Arc<Mutex<Vec<Vec<u8>>>>;

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: (String, u16)) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("local_addr").port();
        let (tx, rx) = watch::channel(Fault::None);
        let openings = Openings::default();
        let seen = openings.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(carry(client, upstream, rx, seen.clone()));
            }
        });
        FaultProxy {
            port,
            set: Arc::new(tx),
            task,
            openings,
        }
    }

    /// The opening bytes of every connection carried so far (see `Openings`).
    pub fn openings(&self) -> Vec<Vec<u8>> {
        self.openings.lock().unwrap().clone()
    }

    pub fn set(&self, f: Fault) {
        self.set.send_replace(f);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

async fn carry(
    client: TcpStream,
    upstream: (String, u16),
    mut rx: watch::Receiver<Fault>,
    openings: Openings,
) {
    let first = *rx.borrow_and_update();
    match first {
        Fault::Reset => return reset(&client),
        Fault::MuteStartup | Fault::Blackhole => return swallow(client, rx).await,
        Fault::SlowNew(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
        return reset(&client);
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (mut a, mut b) = (vec![0u8; 16384], vec![0u8; 16384]);
    let mut opened = false;
    loop {
        let fault = *rx.borrow_and_update();
        match fault {
            Fault::Reset => {
                reset(cw.as_ref());
                reset(sw.as_ref());
                return;
            }
            Fault::HalfOpen => {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            _ => {}
        }
        let drop_bytes = fault == Fault::Blackhole;
        let delay = match fault {
            Fault::Latency(d) => Some(d),
            _ => None,
        };
        tokio::select! {
            r = cr.read(&mut a) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) if !drop_bytes => {
                    if !opened {
                        opened = true;
                        openings.lock().unwrap().push(a[..n.min(8)].to_vec());
                    }
                    if let Some(d) = delay { tokio::time::sleep(d).await; }
                    if sw.write_all(&a[..n]).await.is_err() { return; }
                }
                Ok(_) => {}
            },
            r = sr.read(&mut b) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) if !drop_bytes => {
                    if let Some(d) = delay { tokio::time::sleep(d).await; }
                    if cw.write_all(&b[..n]).await.is_err() { return; }
                }
                Ok(_) => {}
            },
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

/// A connection that never reaches the server: its bytes are read and dropped until the
/// fault becomes a reset (or the peer goes).
async fn swallow(mut client: TcpStream, mut rx: watch::Receiver<Fault>) {
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            r = client.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
            r = rx.changed() => {
                if r.is_err() { return }
                if *rx.borrow() == Fault::Reset { return reset(&client) }
            }
        }
    }
}
