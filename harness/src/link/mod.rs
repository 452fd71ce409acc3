//! Links: a TCP fault proxy soak runs in front of a dependency, after
//! Toxiproxy. A service is pointed at the link's address instead of its
//! dependency's; the link forwards each connection as a pair of streams
//! (upstream: client → target, downstream: target → client), and faults are
//! added to and removed from those streams live, without dropping the
//! connections.
//!
//! ```text
//! let link = Link::start("store", "127.0.0.1:0".parse()?, store_addr).await?;
//! let guard = link.add(Fault::Blackhole { direction: Direction::Both })?;
//! // ... the service talks to link.addr(); watch it cope ...
//! guard.remove()?; // or drop it: Drop removes the fault on every path
//! ```
//!
//! Every fault comes back as a [`FaultGuard`] whose `Drop` removes it, so a
//! fault is undone on success, failure and panic alike. [`Link::faults`]
//! says what is broken right now; [`Link::take`] gives the counters of the
//! interval since the last take, for the sampler to journal.
//!
//! The link runs on the tokio runtime that started it (soak's is
//! current-thread): one task accepts, one task per connection drives both
//! streams. With no fault active, a stream is a plain read/write copy.

mod fault;
mod pipe;
mod run;

pub use fault::{Direction, Fault};
pub use run::{Links, start_all};

use crate::clock::now_ms;
use fault::Way;
use serde::Serialize;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How often a link whose port could not be listened on again retries.
const REBIND_EVERY: Duration = Duration::from_millis(100);
/// The pause after a failed accept (EMFILE, say), so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("link {link}: cannot listen on {addr}: {source}")]
    Listen {
        link: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("link {link}: {fault}: {why}")]
    BadFault {
        link: String,
        fault: &'static str,
        why: String,
    },
    #[error("link {link}: cannot resolve `{to}` to an address")]
    Unresolved { link: String, to: String },
    #[error("link {link} is shut down")]
    Closed { link: String },
}

/// A fault in effect on a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub fault: Fault,
    /// Milliseconds since the Unix epoch, as the journal counts time.
    pub since: i64,
}

/// What went through a link: connections accepted (`opened`) and bytes
/// delivered each way, plus the connections open at the moment (`active`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub opened: u64,
    pub active: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Default)]
struct Totals {
    opened: AtomicU64,
    active: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Totals {
    fn add(&self, way: Way, n: usize) {
        let counter = match way {
            Way::Up => &self.bytes_up,
            Way::Down => &self.bytes_down,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn read(&self) -> Counters {
        Counters {
            opened: self.opened.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
        }
    }
}

/// Counts a connection as active for as long as its task holds it.
struct Active<'a>(&'a Totals);

impl<'a> Active<'a> {
    fn enter(totals: &'a Totals) -> Self {
        totals.active.fetch_add(1, Ordering::Relaxed);
        Active(totals)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every task of a link watches: the faults, and how many resets have
/// been ordered (a count, so a reset added and removed between two looks is
/// still seen).
#[derive(Clone, Debug, Default)]
struct State {
    faults: Vec<ActiveFault>,
    resets: u64,
    closed: bool,
}

impl State {
    fn faults(&self) -> impl Iterator<Item = &Fault> {
        self.faults.iter().map(|a| &a.fault)
    }

    fn has(&self, wanted: &Fault) -> bool {
        self.faults().any(|f| f == wanted)
    }
}

struct Shared {
    name: String,
    addr: SocketAddr,
    target: SocketAddr,
    runtime: Handle,
    state: watch::Sender<State>,
    /// True while any fault is active: the one thing the fast path reads.
    faulty: AtomicBool,
    /// `None` while refusing, after shutdown, or while a rebind fails.
    listener: Mutex<Option<TcpListener>>,
    /// Serialises add and remove; holds the next fault id.
    control: Mutex<u64>,
    totals: Totals,
    taken: Mutex<Counters>,
    /// Seeds each stream's jitter generator.
    seed: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn listen(&self) -> io::Result<TcpListener> {
        let std = std::net::TcpListener::bind(self.addr)?;
        std.set_nonblocking(true)?;
        let _runtime = self.runtime.enter();
        TcpListener::from_std(std)
    }

    /// Listens again unless a refuse is active or the link is closed.
    fn relisten(&self) -> io::Result<()> {
        let state = self.state.borrow();
        let mut slot = lock(&self.listener);
        if slot.is_some() || state.closed || state.has(&Fault::Refuse) {
            return Ok(());
        }
        *slot = Some(self.listen()?);
        Ok(())
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match lock(&self.listener).as_ref() {
            Some(listener) => listener.poll_accept(cx),
            // A change of state wakes the accept loop when a listener returns.
            None => Poll::Pending,
        }
    }

    fn add(self: &Arc<Self>, fault: Fault) -> Result<FaultGuard, LinkError> {
        fault.check().map_err(|why| LinkError::BadFault {
            link: self.name.clone(),
            fault: fault.name(),
            why,
        })?;
        let mut next_id = lock(&self.control);
        if self.state.borrow().closed {
            return Err(LinkError::Closed {
                link: self.name.clone(),
            });
        }
        let id = *next_id;
        *next_id += 1;
        if fault == Fault::Refuse {
            // Dropping the listener closes the socket: from here on the
            // kernel answers SYNs with RST, which clients see as ECONNREFUSED.
            lock(&self.listener).take();
        }
        let resets = u64::from(fault == Fault::Reset);
        self.state.send_modify(|state| {
            state.faults.push(ActiveFault {
                id,
                fault,
                since: now_ms(),
            });
            state.resets += resets;
        });
        self.faulty.store(true, Ordering::Release);
        Ok(FaultGuard {
            shared: Arc::clone(self),
            id,
            armed: true,
        })
    }

    fn remove(&self, id: u64) -> Result<(), LinkError> {
        let _serial = lock(&self.control);
        let mut removed = None;
        self.state.send_if_modified(|state| {
            let at = state.faults.iter().position(|a| a.id == id);
            removed = at.map(|i| state.faults.remove(i));
            removed.is_some()
        });
        let faulty = !self.state.borrow().faults.is_empty();
        self.faulty.store(faulty, Ordering::Release);
        match removed {
            Some(ActiveFault {
                fault: Fault::Refuse,
                ..
            }) => {
                let relistened = self.relisten();
                // Wake the accept loop to poll the new listener (or, when
                // listening failed, to retry every REBIND_EVERY).
                self.state.send_modify(|_| {});
                relistened.map_err(|source| LinkError::Listen {
                    link: self.name.clone(),
                    addr: self.addr,
                    source,
                })
            }
            _ => Ok(()),
        }
    }

    fn close(&self) {
        let _serial = lock(&self.control);
        lock(&self.listener).take();
        self.state.send_modify(|state| state.closed = true);
    }
}

/// A running fault proxy. Dropping it closes the listener and every
/// connection through it; [`Link::shutdown`] does the same and waits.
pub struct Link {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Link {
    /// Listens on `listen` (port 0: one the kernel picks; the link keeps it
    /// for its whole life, refusals included) and forwards every connection
    /// to `target`. Runs on the current tokio runtime.
    pub async fn start(
        name: impl Into<String>,
        listen: SocketAddr,
        target: SocketAddr,
    ) -> Result<Link, LinkError> {
        let name = name.into();
        let bind_error = |source| LinkError::Listen {
            link: name.clone(),
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        Link::serve(name, listener, target).map_err(|e| match e {
            LinkError::Listen { link, source, .. } => LinkError::Listen {
                link,
                addr: listen,
                source,
            },
            other => other,
        })
    }

    /// Like [`Link::start`], on a port bound beforehand (the plan binds it,
    /// so the services' `{link.NAME}` names it before they start).
    pub fn from_std(
        name: impl Into<String>,
        listener: std::net::TcpListener,
        target: SocketAddr,
    ) -> Result<Link, LinkError> {
        let name = name.into();
        let addr = listener.local_addr();
        let wrap = |source| LinkError::Listen {
            link: name.clone(),
            addr: addr
                .as_ref()
                .copied()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
            source,
        };
        listener.set_nonblocking(true).map_err(wrap)?;
        let listener = TcpListener::from_std(listener).map_err(wrap)?;
        Link::serve(name, listener, target)
    }

    fn serve(name: String, listener: TcpListener, target: SocketAddr) -> Result<Link, LinkError> {
        let addr = listener.local_addr().map_err(|source| LinkError::Listen {
            link: name.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let (state, _) = watch::channel(State::default());
        let shared = Arc::new(Shared {
            name,
            addr,
            target,
            runtime: Handle::current(),
            state,
            faulty: AtomicBool::new(false),
            listener: Mutex::new(Some(listener)),
            control: Mutex::new(1),
            totals: Totals::default(),
            taken: Mutex::new(Counters::default()),
            seed: AtomicU64::new(u64::from(addr.port())),
        });
        let accept = tokio::spawn(accept_loop(Arc::clone(&shared)));
        Ok(Link {
            shared,
            accept: Some(accept),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address clients connect to (`{link.NAME}`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Puts `fault` into effect at once, on open connections and new ones.
    /// It stays until the returned guard is removed or dropped.
    pub fn add(&self, fault: Fault) -> Result<FaultGuard, LinkError> {
        self.shared.add(fault)
    }

    /// The faults in effect now, oldest first.
    pub fn faults(&self) -> Vec<ActiveFault> {
        self.shared.state.borrow().faults.clone()
    }

    /// False while a refuse is active, and while the port could not be
    /// listened on again after one (the link keeps trying).
    pub fn listening(&self) -> bool {
        lock(&self.shared.listener).is_some()
    }

    /// The counters since the link started.
    pub fn totals(&self) -> Counters {
        self.shared.totals.read()
    }

    /// The counters since the previous `take` (since the start for the
    /// first): connections opened and bytes each way in the interval, and
    /// the connections active now.
    pub fn take(&self) -> Counters {
        let now = self.shared.totals.read();
        let mut taken = lock(&self.shared.taken);
        let interval = Counters {
            opened: now.opened - taken.opened,
            active: now.active,
            bytes_up: now.bytes_up - taken.bytes_up,
            bytes_down: now.bytes_down - taken.bytes_down,
        };
        *taken = now;
        interval
    }

    /// Closes the listener and every connection, and waits for the link's
    /// tasks to end.
    pub async fn shutdown(mut self) {
        self.shared.close();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Removes its fault when dropped: on the normal path, an early return, an
/// error and a panic alike.
#[must_use = "dropping the guard removes the fault at once"]
pub struct FaultGuard {
    shared: Arc<Shared>,
    id: u64,
    armed: bool,
}

impl FaultGuard {
    /// The fault's id in [`Link::faults`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Removes the fault now. An error means a removed refuse could not
    /// listen on its port again; the link keeps retrying in the background
    /// and [`Link::listening`] says when it succeeds.
    pub fn remove(mut self) -> Result<(), LinkError> {
        self.armed = false;
        self.shared.remove(self.id)
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if self.armed {
            // Nowhere to report from Drop; a failed relisten is retried by
            // the accept loop and visible in `Link::listening`.
            let _ = self.shared.remove(self.id);
        }
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    let mut state = shared.state.subscribe();
    let mut connections = JoinSet::new();
    loop {
        let (closed, refusing) = {
            let now = state.borrow_and_update();
            (now.closed, now.has(&Fault::Refuse))
        };
        if closed {
            break;
        }
        let relisten = !refusing && lock(&shared.listener).is_none();
        tokio::select! {
            accepted = poll_fn(|cx| shared.poll_accept(cx)) => match accepted {
                Ok((client, _)) => {
                    shared.totals.opened.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(connection(Arc::clone(&shared), client));
                }
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
            changed = state.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep(REBIND_EVERY), if relisten => {
                let _ = shared.relisten();
            }
        }
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

/// Why a connection ended early.
enum End {
    /// A reset was ordered, or one side broke: both sides get an RST.
    Reset,
    /// The link shut down: both sides are closed normally.
    Closed,
}

/// Resolves when a reset is ordered after `seen` resets, or the link closes.
async fn interrupted(state: &mut watch::Receiver<State>, seen: u64) -> End {
    loop {
        {
            let now = state.borrow_and_update();
            if now.closed {
                return End::Closed;
            }
            if now.resets != seen {
                return End::Reset;
            }
        }
        if state.changed().await.is_err() {
            return End::Closed;
        }
    }
}

/// An RST instead of a FIN: SO_LINGER 0, then close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connection(shared: Arc<Shared>, mut client: TcpStream) {
    let _active = Active::enter(&shared.totals);
    let mut state = shared.state.subscribe();
    let seen = {
        let now = state.borrow_and_update();
        if now.has(&Fault::Reset) {
            drop(now);
            reset(client);
            return;
        }
        now.resets
    };
    let connected = tokio::select! {
        connected = TcpStream::connect(shared.target) => connected,
        end = interrupted(&mut state, seen) => {
            if matches!(end, End::Reset) {
                reset(client);
            }
            return;
        }
    };
    // A target that refuses or cannot be reached shows as a reset.
    let Ok(mut target) = connected else {
        reset(client);
        return;
    };
    // The proxy adds no batching of its own: the client's and the target's
    // own write pattern is what goes through.
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut target_read, mut target_write) = target.split();
        let streams = async {
            tokio::try_join!(
                pipe::pipe(&mut client_read, &mut target_write, Way::Up, &shared),
                pipe::pipe(&mut target_read, &mut client_write, Way::Down, &shared),
            )
        };
        tokio::select! {
            done = streams => match done {
                Ok(_) => None,
                Err(_) => Some(End::Reset),
            },
            end = interrupted(&mut state, seen) => Some(end),
        }
    };
    if matches!(end, Some(End::Reset)) {
        reset(client);
        reset(target);
    }
}
