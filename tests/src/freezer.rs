//! A TCP proxy that can go silent: the connections it carries stay open,
//! but nothing passes any more, as when a peer vanishes without a word or a
//! NAT or firewall entry is dropped (a half-open connection). Connections
//! made after the freeze pass again, so a client that notices and
//! reconnects recovers, and one that does not stays deaf: what the tests of
//! keepalives and response timeouts need.
//!
//! It forwards to a TCP port or to a unix socket (the test engine's), and
//! can freeze only the connections whose latest HTTP request is of one kind
//! ([`Freezer::freeze_requests`]): a Docker event stream that hangs while
//! the engine's other calls still answer.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream, UnixStream},
    sync::watch,
};

/// Which connections' latest request line a freeze silences.
type Matcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A freeze: connections of a generation below `below` whose latest
/// request `matching` accepts (any, when None) go silent.
#[derive(Clone, Default)]
struct Freeze {
    below: u64,
    matching: Option<Matcher>,
}

#[derive(Clone)]
enum Target {
    Tcp(u16),
    Unix(PathBuf),
}

pub struct Freezer {
    port: u16,
    /// Set by [`Freezer::blackhole`]: new connections are held silent too.
    holding: Arc<AtomicBool>,
    freezes: watch::Sender<Freeze>,
    generation: Arc<AtomicU64>,
    /// Bumped by [`Freezer::thaw`]: silent connections are closed.
    thaws: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Freezer {
    /// Proxies 127.0.0.1:<a free port> to `127.0.0.1:target`.
    pub async fn start(target: u16) -> Freezer {
        Freezer::start_to(Target::Tcp(target)).await
    }

    /// Proxies 127.0.0.1:<a free port> to the unix socket at `path` (e.g.
    /// the test engine's, so a client can reach it as `tcp://`).
    pub async fn start_unix(path: impl Into<PathBuf>) -> Freezer {
        Freezer::start_to(Target::Unix(path.into())).await
    }

    async fn start_to(target: Target) -> Freezer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (freezes, watch) = watch::channel(Freeze::default());
        let generation = Arc::new(AtomicU64::new(0));
        let current = generation.clone();
        let holding = Arc::new(AtomicBool::new(false));
        let hold = holding.clone();
        let (thaws, thawed) = watch::channel(0u64);
        let mut thawing = thawed.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let client = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => return,
                    },
                    changed = thawing.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        // Closed: the peer is back, and says so.
                        held.clear();
                        continue;
                    }
                };
                if hold.load(Ordering::SeqCst) {
                    // Accepted, never answered: a peer gone silent.
                    held.push(client);
                    continue;
                }
                let born = current.load(Ordering::SeqCst);
                let (watch, thawed) = (watch.clone(), thawed.clone());
                match &target {
                    Target::Tcp(port) => {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", *port)).await else { continue };
                        tokio::spawn(pipe(client, server, born, watch, thawed));
                    }
                    Target::Unix(path) => {
                        let Ok(server) = UnixStream::connect(path).await else { continue };
                        tokio::spawn(pipe(client, server, born, watch, thawed));
                    }
                }
            }
        });
        Freezer { port, holding, freezes, generation, thaws, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every connection open now goes silent (and stays open); new ones pass.
    pub fn freeze(&self) {
        self.freeze_where(None);
    }

    /// Every connection goes silent, open ones and new ones alike: the
    /// peer is gone without a word, and reconnecting does not help.
    pub fn blackhole(&self) {
        self.holding.store(true, Ordering::SeqCst);
        self.freeze();
    }

    /// The connections open now whose latest HTTP request line (`GET
    /// /v1.47/events?since=...`) `matching` accepts go silent; the others,
    /// and new ones, pass.
    pub fn freeze_requests(&self, matching: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.freeze_where(Some(Arc::new(matching)));
    }

    /// The peer is back: silent connections are closed (their clients
    /// see the connection end, as after a reset), and new ones pass.
    pub fn thaw(&self) {
        self.holding.store(false, Ordering::SeqCst);
        self.thaws.send_modify(|n| *n += 1);
    }

    fn freeze_where(&self, matching: Option<Matcher>) {
        let below = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.freezes.send(Freeze { below, matching });
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The request line of `chunk` when it starts an HTTP request.
fn request_line(chunk: &[u8]) -> Option<String> {
    const METHODS: [&[u8]; 5] = [b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD "];
    METHODS.iter().any(|m| chunk.starts_with(m)).then(|| {
        let end = chunk.windows(2).position(|w| w == b"\r\n").unwrap_or(chunk.len());
        String::from_utf8_lossy(&chunk[..end]).into_owned()
    })
}

async fn pipe<S>(
    client: TcpStream,
    server: S,
    born: u64,
    mut freezes: watch::Receiver<Freeze>,
    mut thawed: watch::Receiver<u64>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    // Only thaws after this connection's freeze count.
    thawed.borrow_and_update();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = tokio::io::split(server);
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let mut request = String::new();
    loop {
        tokio::select! {
            changed = freezes.changed() => {
                if changed.is_err() {
                    return;
                }
                let freeze = freezes.borrow_and_update().clone();
                if born < freeze.below && freeze.matching.as_ref().is_none_or(|m| m(&request)) {
                    // Silent, not closed: hold both sockets until a thaw
                    // (or the end of the test).
                    let _ = thawed.changed().await;
                    return;
                }
            }
            n = cr.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(line) = request_line(&up[..n]) {
                        request = line;
                    }
                    if sw.write_all(&up[..n]).await.is_err() { return }
                }
            },
            n = sr.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
            },
        }
    }
}
