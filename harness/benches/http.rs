//! The cost of one probe or workload request through [`soak::http::request`]
//! against a server on 127.0.0.1: connect, send, read and decode the reply,
//! close. A 72 h soak with a 1 s health probe and a 20/s workload sends
//! about five million of these, so the client's own share must stay small
//! next to the kernel's loopback round trip.
//!
//! The server is a plain blocking loop on its own thread that reads one
//! request head and writes a canned reply, so the figures are the client's
//! cost plus loopback TCP, not a server's. Three replies: a 2-byte
//! Content-Length body (a health probe), a 2-byte chunked body, and a
//! 256 KiB body in 4 KiB chunks (a large read).
//!
//! `cargo bench -p soak --bench http` (about 30 s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// Serves `reply` to every connection until the process ends; returns the port.
fn serve(reply: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            // The whole head must be read before closing, or the kernel
            // answers the unread bytes with a reset.
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(&reply);
        }
    });
    port
}

fn chunked(body_len: usize, chunk: usize) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk);
        r.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        r.extend(std::iter::repeat_n(b'x', n));
        r.extend_from_slice(b"\r\n");
        left -= n;
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cases = [
        (
            "content-length 2 B",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            2,
        ),
        ("chunked 2 B", chunked(2, 4096), 2),
        ("chunked 256 KiB", chunked(256 << 10, 4096), 256 << 10),
    ];
    let mut group = c.benchmark_group("http");
    group.measurement_time(Duration::from_secs(5));
    for (name, reply, body_len) in cases {
        let url = format!("http://127.0.0.1:{}/health", serve(reply));
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = rt
                    .block_on(soak::http::request(
                        "GET",
                        &url,
                        &[],
                        None,
                        Duration::from_secs(5),
                    ))
                    .expect("request");
                assert_eq!((r.status, r.body.len()), (200, body_len));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
