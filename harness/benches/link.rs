//! What a link costs with no fault active: bulk throughput and the round
//! trip of a small request/response, straight to a target and through a
//! link, on 127.0.0.1.
//!
//! The link runs as in soak, on a current-thread runtime of its own thread;
//! the client and the target are plain blocking sockets on other threads,
//! as they would be other processes.
//!
//! `cargo bench -p soak --bench link`
//! (`SOAK_LINK_MB` bytes of bulk, default 512; `SOAK_LINK_ROUNDS` round
//! trips, default 20000.)

use soak::link::Link;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const WRITE: usize = 64 * 1024;
const MESSAGE: usize = 64;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A target that reads everything and reports each connection's byte count
/// when it ends.
fn sink() -> (SocketAddr, mpsc::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let tx = tx.clone();
            thread::spawn(move || {
                let mut buf = vec![0u8; WRITE];
                let mut total = 0;
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    total += n;
                }
                let _ = tx.send(total);
            });
        }
    });
    (addr, rx)
}

/// A target that echoes MESSAGE-sized requests.
fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                conn.set_nodelay(true).unwrap();
                let mut buf = [0u8; MESSAGE];
                while conn.read_exact(&mut buf).is_ok() {
                    if conn.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Starts a link to `target` on a thread of its own; dropping the sender
/// shuts it down.
fn link_to(target: SocketAddr) -> (SocketAddr, mpsc::Sender<()>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let link = Link::start("bench", "127.0.0.1:0".parse().unwrap(), target)
                .await
                .unwrap();
            addr_tx.send(link.addr()).unwrap();
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            link.shutdown().await;
        });
    });
    (addr_rx.recv().unwrap(), stop_tx)
}

fn throughput(addr: SocketAddr, done: &mpsc::Receiver<usize>, bytes: usize) -> f64 {
    let chunk = vec![0x5Au8; WRITE];
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr).unwrap();
    let mut sent = 0;
    while sent < bytes {
        conn.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    drop(conn);
    let got = done.recv_timeout(Duration::from_secs(300)).unwrap();
    assert_eq!(got, sent, "the sink did not get every byte");
    sent as f64 / 1e6 / start.elapsed().as_secs_f64()
}

/// Round-trip times in microseconds, sorted.
fn round_trips(addr: SocketAddr, rounds: usize) -> Vec<f64> {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_nodelay(true).unwrap();
    let request = [0x42u8; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    // Warm-up: connection set-up and first-touch costs are not the steady state.
    for _ in 0..rounds / 10 {
        conn.write_all(&request).unwrap();
        conn.read_exact(&mut answer).unwrap();
    }
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            conn.write_all(&request).unwrap();
            conn.read_exact(&mut answer).unwrap();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then
    // a quick smoke run is enough.
    let benching = std::env::args().any(|a| a == "--bench");
    let bytes = env_number("SOAK_LINK_MB", if benching { 512 } else { 8 }) << 20;
    let rounds = env_number("SOAK_LINK_ROUNDS", if benching { 20_000 } else { 200 });

    let (sink_addr, sink_done) = sink();
    let (sink_link, _stop_sink) = link_to(sink_addr);
    let direct_mbs = throughput(sink_addr, &sink_done, bytes);
    let linked_mbs = throughput(sink_link, &sink_done, bytes);

    let echo_addr = echo();
    let (echo_link, _stop_echo) = link_to(echo_addr);
    let direct = round_trips(echo_addr, rounds);
    let linked = round_trips(echo_link, rounds);

    println!(
        "link, no fault active ({} MiB bulk, {rounds} round trips of {MESSAGE} B)",
        bytes >> 20
    );
    println!("                    direct     through link");
    println!("throughput MB/s  {direct_mbs:>10.0} {linked_mbs:>12.0}");
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let (d, l) = (quantile(&direct, q), quantile(&linked, q));
        println!(
            "round trip {name} µs {d:>8.1} {l:>12.1}   (+{:.1} µs)",
            l - d
        );
    }
}
