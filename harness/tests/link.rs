//! The link proxy at the byte level: real sockets on 127.0.0.1, a target
//! written here, every fault added and removed live. Bounds on time are
//! generous; exact speeds are for `benches/link.rs`.

use soak::link::{Direction, Fault, Link};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a read waits before the test calls the link silent.
const SILENCE: Duration = Duration::from_millis(500);
/// Upper bound on anything that should happen promptly.
const PROMPT: Duration = Duration::from_secs(10);

/// A target that echoes every byte and counts what it received.
async fn echo_target() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    count.fetch_add(n, Ordering::SeqCst);
                    if conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, received)
}

/// A target that speaks first (`greeting`, then `then` bytes of 'x'), and
/// reports each chunk it receives with the instant it arrived.
async fn talking_target(
    greeting: &'static [u8],
    then: usize,
) -> (SocketAddr, mpsc::UnboundedReceiver<(Instant, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if conn.write_all(greeting).await.is_err()
                    || conn.write_all(&vec![b'x'; then]).await.is_err()
                {
                    return;
                }
                let mut buf = vec![0u8; 4096];
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    let _ = tx.send((Instant::now(), buf[..n].to_vec()));
                }
            });
        }
    });
    (addr, rx)
}

async fn link_to(target: SocketAddr) -> Link {
    Link::start("test", "127.0.0.1:0".parse().unwrap(), target)
        .await
        .unwrap()
}

async fn connect(link: &Link) -> TcpStream {
    tokio::time::timeout(PROMPT, TcpStream::connect(link.addr()))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Sends `msg` and reads the same number of bytes back, within PROMPT.
async fn round_trip(conn: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    conn.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(PROMPT, conn.read_exact(&mut back))
        .await
        .expect("answer in time")
        .expect("answer");
    back
}

/// True if nothing (not even EOF) arrives within SILENCE.
async fn silent(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(SILENCE, conn.read(&mut buf))
        .await
        .is_err()
}

async fn read_error(conn: &mut TcpStream) -> ErrorKind {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(PROMPT, conn.read(&mut buf)).await {
        Ok(Err(e)) => e.kind(),
        Ok(Ok(n)) => panic!("expected an error, read {n} bytes"),
        Err(_) => panic!("expected an error, the read hung"),
    }
}

#[tokio::test]
async fn a_clean_link_forwards_every_byte_and_counts_it() {
    let (target, received) = echo_target().await;
    let link = link_to(target).await;
    let mut conn = connect(&link).await;
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let back = round_trip(&mut conn, &msg).await;
    assert_eq!(back, msg);
    assert_eq!(received.load(Ordering::SeqCst), msg.len());

    let interval = link.take();
    assert_eq!(interval.opened, 1);
    assert_eq!(interval.active, 1);
    assert_eq!(interval.bytes_up, msg.len() as u64);
    assert_eq!(interval.bytes_down, msg.len() as u64);
    let next = link.take();
    assert_eq!((next.opened, next.bytes_up, next.bytes_down), (0, 0, 0));
    assert!(link.faults().is_empty());

    drop(conn);
    let start = Instant::now();
    while link.totals().active > 0 {
        assert!(start.elapsed() < PROMPT, "the connection never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(link.totals().opened, 1);
}

#[tokio::test]
async fn latency_delays_each_way_by_at_least_the_delay() {
    let (target, _) = echo_target().await;
    let link = link_to(target).await;
    let mut conn = connect(&link).await;
    round_trip(&mut conn, b"warm").await;

    let delay = Duration::from_millis(300);
    let guard = link
        .add(Fault::Latency {
            delay,
            jitter: Duration::ZERO,
            direction: Direction::Both,
        })
        .unwrap();
    let start = Instant::now();
    assert_eq!(round_trip(&mut conn, b"slow").await, b"slow");
    let took = start.elapsed();
    assert!(took >= 2 * delay, "round trip took {took:?}");
    assert!(took < 2 * delay + PROMPT, "round trip took {took:?}");

    // Removed live: the same connection is fast again.
    guard.remove().unwrap();
    let start = Instant::now();
    assert_eq!(round_trip(&mut conn, b"fast").await, b"fast");
    assert!(start.elapsed() < PROMPT);
    assert!(link.faults().is_empty());
}

#[tokio::test]
async fn upstream_latency_holds_requests_and_downstream_latency_holds_answers() {
    let delay = Duration::from_millis(800);
    for direction in [Direction::Upstream, Direction::Downstream] {
        let (target, mut arrivals) = talking_target(b"", 0).await;
        let link = link_to(target).await;
        let _guard = link
            .add(Fault::Latency {
                delay,
                jitter: Duration::ZERO,
                direction,
            })
            .unwrap();
        let mut conn = connect(&link).await;
        let sent = Instant::now();
        conn.write_all(b"request").await.unwrap();
        let (arrived, bytes) = tokio::time::timeout(PROMPT, arrivals.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bytes, b"request");
        let took = arrived - sent;
        match direction {
            Direction::Upstream => assert!(took >= delay, "{direction:?}: {took:?}"),
            _ => assert!(took < delay, "{direction:?}: the request waited {took:?}"),
        }
    }
}

#[tokio::test]
async fn jitter_keeps_chunks_in_order() {
    let (target, _) = echo_target().await;
    let link = link_to(target).await;
    let _guard = link
        .add(Fault::Latency {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(20),
            direction: Direction::Both,
        })
        .unwrap();
    let mut conn = connect(&link).await;
    for i in 0..20u8 {
        let msg = [i; 100];
        conn.write_all(&msg).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut back = vec![0u8; 2000];
    tokio::time::timeout(PROMPT, conn.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    let expected: Vec<u8> = (0..20u8).flat_map(|i| [i; 100]).collect();
    assert_eq!(back, expected);
}

#[tokio::test]
async fn blackhole_swallows_and_removing_it_lets_the_same_connection_flow() {
    let (target, received) = echo_target().await;
    let link = link_to(target).await;
    let mut conn = connect(&link).await;
    assert_eq!(round_trip(&mut conn, b"one").await, b"one");

    let guard = link
        .add(Fault::Blackhole {
            direction: Direction::Both,
        })
        .unwrap();
    assert_eq!(link.faults().len(), 1);
    assert_eq!(link.faults()[0].fault.name(), "blackhole");
    conn.write_all(b"two").await.unwrap();
    assert!(silent(&mut conn).await, "a blackholed link answered");
    assert_eq!(
        received.load(Ordering::SeqCst),
        3,
        "the target got swallowed bytes"
    );

    // New connections are accepted and go just as silent.
    let mut late = connect(&link).await;
    late.write_all(b"late").await.unwrap();
    assert!(silent(&mut late).await);
    assert_eq!(received.load(Ordering::SeqCst), 3);

    guard.remove().unwrap();
    assert_eq!(round_trip(&mut conn, b"three").await, b"three");
    assert_eq!(round_trip(&mut late, b"four").await, b"four");
}

#[tokio::test]
async fn blackhole_direction_decides_which_side_goes_silent() {
    // Upstream: the target's greeting arrives, the client's bytes do not.
    let (target, mut arrivals) = talking_target(b"hello", 0).await;
    let link = link_to(target).await;
    let _guard = link
        .add(Fault::Blackhole {
            direction: Direction::Upstream,
        })
        .unwrap();
    let mut conn = connect(&link).await;
    let mut greeting = [0u8; 5];
    tokio::time::timeout(PROMPT, conn.read_exact(&mut greeting))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&greeting, b"hello");
    conn.write_all(b"request").await.unwrap();
    assert!(
        tokio::time::timeout(SILENCE, arrivals.recv())
            .await
            .is_err(),
        "upstream blackhole let the request through"
    );

    // Downstream: the client's bytes arrive, the greeting does not.
    let (target, mut arrivals) = talking_target(b"hello", 0).await;
    let link = link_to(target).await;
    let _guard = link
        .add(Fault::Blackhole {
            direction: Direction::Downstream,
        })
        .unwrap();
    let mut conn = connect(&link).await;
    conn.write_all(b"request").await.unwrap();
    let (_, bytes) = tokio::time::timeout(PROMPT, arrivals.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes, b"request");
    assert!(
        silent(&mut conn).await,
        "downstream blackhole let the greeting through"
    );
}

#[tokio::test]
async fn reset_resets_open_and_new_connections_with_econnreset() {
    let (target, _) = echo_target().await;
    let link = link_to(target).await;
    let mut open = connect(&link).await;
    assert_eq!(round_trip(&mut open, b"hi").await, b"hi");

    let guard = link.add(Fault::Reset).unwrap();
    assert_eq!(read_error(&mut open).await, ErrorKind::ConnectionReset);
    let mut fresh = connect(&link).await;
    assert_eq!(read_error(&mut fresh).await, ErrorKind::ConnectionReset);

    drop(guard);
    assert!(link.faults().is_empty());
    let mut after = connect(&link).await;
    assert_eq!(round_trip(&mut after, b"back").await, b"back");
}

#[tokio::test]
async fn refuse_gives_econnrefused_and_the_same_port_serves_again_after_rollback() {
    let (target, _) = echo_target().await;
    let link = link_to(target).await;
    let addr = link.addr();
    let mut open = connect(&link).await;
    // Accepted and forwarding before the refuse: one still in the kernel's
    // backlog when the listener closes is reset instead.
    assert_eq!(round_trip(&mut open, b"before").await, b"before");

    let guard = link.add(Fault::Refuse).unwrap();
    assert!(!link.listening());
    let refused = TcpStream::connect(addr).await.map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // Open connections are left alone.
    assert_eq!(round_trip(&mut open, b"still").await, b"still");

    guard.remove().unwrap();
    assert!(link.listening());
    assert_eq!(link.addr(), addr);
    let mut again = connect(&link).await;
    assert_eq!(round_trip(&mut again, b"again").await, b"again");
}

#[tokio::test]
async fn bandwidth_caps_the_rate_of_its_direction_only() {
    const SIZE: usize = 40_000;
    let (target, mut arrivals) = talking_target(b"", SIZE).await;
    let link = link_to(target).await;
    let _guard = link
        .add(Fault::Bandwidth {
            rate: 20_000,
            direction: Direction::Downstream,
        })
        .unwrap();
    let mut conn = connect(&link).await;
    let start = Instant::now();
    // Upstream is not capped: a large request arrives well before the
    // capped answer could.
    conn.write_all(&vec![b'r'; SIZE]).await.unwrap();
    let mut up = 0;
    while up < SIZE {
        let (_, bytes) = tokio::time::timeout(PROMPT, arrivals.recv())
            .await
            .unwrap()
            .unwrap();
        up += bytes.len();
    }
    let upstream_took = start.elapsed();
    let mut body = vec![0u8; SIZE];
    tokio::time::timeout(PROMPT, conn.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    let took = start.elapsed();
    // 40 000 bytes at 20 000 B/s: 2 s, less the first slice sent at once.
    assert!(
        took >= Duration::from_millis(1500),
        "capped answer took {took:?}"
    );
    assert!(took < Duration::from_secs(8), "capped answer took {took:?}");
    assert!(
        upstream_took < Duration::from_millis(1500),
        "the uncapped direction took {upstream_took:?}"
    );
}

#[tokio::test]
async fn dropping_the_guard_removes_the_fault_even_in_a_panic() {
    let (target, _) = echo_target().await;
    let link = link_to(target).await;
    {
        let _guard = link
            .add(Fault::Blackhole {
                direction: Direction::Both,
            })
            .unwrap();
        assert_eq!(link.faults().len(), 1);
    }
    assert!(link.faults().is_empty());

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = link.add(Fault::Refuse).unwrap();
        assert!(!link.listening());
        panic!("a scenario step failed");
    }));
    assert!(panicked.is_err());
    assert!(link.faults().is_empty());
    assert!(link.listening());
    let mut conn = connect(&link).await;
    assert_eq!(round_trip(&mut conn, b"ok").await, b"ok");
}

#[tokio::test]
async fn faults_are_listed_with_ids_and_rejected_when_meaningless() {
    let (target, _) = echo_target().await;
    let link = link_to(target).await;
    let a = link
        .add(Fault::Latency {
            delay: Duration::from_millis(5),
            jitter: Duration::ZERO,
            direction: Direction::Upstream,
        })
        .unwrap();
    let b = link.add(Fault::Reset).unwrap();
    let listed: Vec<(u64, String)> = link
        .faults()
        .iter()
        .map(|f| (f.id, f.fault.to_string()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (a.id(), "latency 5ms upstream".to_string()),
            (b.id(), "reset".to_string())
        ]
    );
    drop(a);
    assert_eq!(link.faults().len(), 1);
    let err = link
        .add(Fault::Bandwidth {
            rate: 0,
            direction: Direction::Both,
        })
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("at least 1 byte/s"), "{err}");
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_every_connection() {
    let (target, _) = echo_target().await;
    let link = link_to(target).await;
    let addr = link.addr();
    let mut conn = connect(&link).await;
    assert_eq!(round_trip(&mut conn, b"hi").await, b"hi");
    link.shutdown().await;
    let mut buf = [0u8; 8];
    let ended = tokio::time::timeout(PROMPT, conn.read(&mut buf))
        .await
        .expect("the connection stayed open");
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
    let refused = TcpStream::connect(addr).await.map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_target_that_refuses_shows_as_a_reset() {
    // A port that was just free: nothing listens there.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let link = link_to(gone).await;
    let mut conn = connect(&link).await;
    assert_eq!(read_error(&mut conn).await, ErrorKind::ConnectionReset);
}

/// The fixture gateway behind a link to the real fixture store: what phase 2
/// scenarios will do through config, done by hand. A blackholed store makes
/// /work time out until the breaker opens, then fail fast; when the fault
/// is removed the gateway recovers.
mod gateway_behind_a_link {
    use super::*;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    /// Builds the fixture binaries once and returns the path of one.
    fn fixture_bin(name: &str) -> PathBuf {
        static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let dir = BUILT.get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "fixtures", "--bins"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("running cargo build for the fixtures");
            assert!(status.success(), "building the fixtures failed");
            PathBuf::from(env!("CARGO_BIN_EXE_soak"))
                .parent()
                .unwrap()
                .to_path_buf()
        });
        dir.join(name)
    }

    /// A child killed by pid when the test ends, pass or fail.
    struct Service(Child);

    impl Drop for Service {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn start(name: &str, args: &[String]) -> (Service, SocketAddr) {
        let port = free_port();
        let child = Command::new(fixture_bin(name))
            .args(["--port".to_string(), port.to_string()])
            .args(args)
            .env_remove("GATEWAY_BUGS")
            .env_remove("STORE_BUGS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let service = Service(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while TcpStream::connect(addr).await.is_err() {
            assert!(start.elapsed() < PROMPT, "{name} never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (service, addr)
    }

    /// GET /work, status and time taken. Async, so the link, which runs on
    /// this test's runtime, keeps forwarding while the test waits.
    async fn work(gateway: SocketAddr) -> (u16, Duration) {
        let start = Instant::now();
        let mut conn = TcpStream::connect(gateway).await.unwrap();
        conn.write_all(b"GET /work HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(PROMPT, conn.read_to_string(&mut answer))
            .await
            .expect("/work answered in time")
            .unwrap();
        (answer[9..12].parse().unwrap(), start.elapsed())
    }

    #[tokio::test]
    async fn a_blackholed_store_trips_the_breaker_and_recovery_follows_the_rollback() {
        let data = tempfile::tempdir().unwrap();
        let (_store, store_addr) = start(
            "store",
            &["--data".into(), data.path().display().to_string()],
        )
        .await;
        let link = Link::start("store", "127.0.0.1:0".parse().unwrap(), store_addr)
            .await
            .unwrap();
        let (_gateway, gateway) = start(
            "gateway",
            &[
                "--workers".into(),
                "0".into(),
                "--store".into(),
                link.addr().to_string(),
            ],
        )
        .await;
        assert_eq!(work(gateway).await.0, 200);

        let guard = link
            .add(Fault::Blackhole {
                direction: Direction::Both,
            })
            .unwrap();
        for _ in 0..3 {
            assert_eq!(work(gateway).await.0, 504);
        }
        let (status, took) = work(gateway).await;
        assert_eq!(status, 503);
        assert!(took < Duration::from_secs(1), "open breaker took {took:?}");
        assert!(link.take().opened >= 4);

        guard.remove().unwrap();
        // The gateway's cool-down is 2 s; then one probe closes the breaker.
        tokio::time::sleep(Duration::from_millis(2600)).await;
        assert_eq!(work(gateway).await.0, 200);
        assert_eq!(work(gateway).await.0, 200);
    }
}
