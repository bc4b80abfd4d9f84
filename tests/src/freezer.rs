//! A TCP proxy that can go silent: the connections it carries stay open,
//! but nothing passes any more, as when a peer vanishes without a word or a
//! NAT or firewall entry is dropped (a half-open connection). Connections
//! made after the freeze pass again, so a client that notices and
//! reconnects recovers, and one that does not stays deaf: what the tests of
//! keepalives and response timeouts need.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct Freezer {
    port: u16,
    /// Connections of a generation below this one are frozen.
    frozen_below: watch::Sender<u64>,
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Freezer {
    /// Proxies 127.0.0.1:<a free port> to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Freezer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (frozen_below, watch) = watch::channel(0u64);
        let generation = Arc::new(AtomicU64::new(0));
        let current = generation.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
                let born = current.load(Ordering::SeqCst);
                tokio::spawn(pipe(client, server, born, watch.clone()));
            }
        });
        Freezer { port, frozen_below, generation, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every connection open now goes silent (and stays open); new ones pass.
    pub fn freeze(&self) {
        let next = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.frozen_below.send(next);
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, born: u64, mut frozen_below: watch::Receiver<u64>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            frozen = async { frozen_below.wait_for(|below| born < *below).await.is_ok() } => {
                if frozen {
                    // Silent, not closed: hold both sockets until the test ends.
                    std::future::pending::<()>().await;
                }
                return;
            }
            n = cr.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if sw.write_all(&up[..n]).await.is_err() { return },
            },
            n = sr.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
            },
        }
    }
}
