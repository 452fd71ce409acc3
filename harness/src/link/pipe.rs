//! One stream of one proxied connection: read from one socket, pass the
//! bytes through the active faults, write to the other.
//!
//! With no fault anywhere on the link the loop is a plain read/write_all
//! copy; one atomic load per chunk decides that. With faults, chunks are
//! stamped on arrival and queued, so a latency delays every chunk by the
//! same hold without serialising the stream (reading goes on while earlier
//! chunks wait), and a bandwidth cap paces the writes.

use super::fault::{Effects, Way};
use super::{Shared, State};
use crate::rng::SplitMix;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

/// Read size; tokio's own copy uses 8 KiB, larger chunks cost fewer
/// wake-ups on bulk transfers.
const CHUNK: usize = 32 * 1024;
/// Bytes held in the queue before the stream stops reading: back-pressure
/// for a slow or delayed stream, and a bound on memory.
const MAX_QUEUED: usize = 1024 * 1024;
/// A bandwidth cap paces writes in slices of a 20th of a second's worth.
const SLICES_PER_SECOND: u64 = 20;

struct Chunk {
    bytes: Vec<u8>,
    sent: usize,
    /// Not written before this instant (arrival + the latency hold).
    due: Instant,
}

struct Queue {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    /// The due time of the last chunk in, so jitter never reorders.
    last_due: Instant,
    /// Under a bandwidth cap, the next write waits for this.
    paced_until: Instant,
    rng: SplitMix,
}

impl Queue {
    fn arrive(&mut self, bytes: &[u8], effects: &Effects) {
        if effects.blackhole {
            return;
        }
        let unit = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let due = (Instant::now() + effects.hold(unit)).max(self.last_due);
        self.last_due = due;
        self.bytes += bytes.len();
        self.chunks.push_back(Chunk {
            bytes: bytes.to_vec(),
            sent: 0,
            due,
        });
    }

    /// When the first queued chunk may be written.
    fn next_due(&self, effects: &Effects) -> Option<Instant> {
        let head = self.chunks.front()?;
        Some(match effects.rate {
            Some(_) => head.due.max(self.paced_until),
            None => head.due,
        })
    }

    /// The bytes of the next write: the rest of the head chunk, or under a
    /// cap one slice of it (and the pace moves on by that slice).
    fn next_slice(&mut self, effects: &Effects) -> Option<&[u8]> {
        let head = self.chunks.front()?;
        let left = head.bytes.len() - head.sent;
        let n = match effects.rate {
            None => left,
            Some(rate) => {
                let n =
                    left.min(usize::try_from((rate / SLICES_PER_SECOND).max(1)).unwrap_or(left));
                let nanos = (n as u128 * 1_000_000_000 / u128::from(rate)).min(u64::MAX as u128);
                self.paced_until =
                    self.paced_until.max(Instant::now()) + Duration::from_nanos(nanos as u64);
                n
            }
        };
        Some(&head.bytes[head.sent..head.sent + n])
    }

    fn advance(&mut self, n: usize) {
        self.bytes -= n;
        if let Some(head) = self.chunks.front_mut() {
            head.sent += n;
            if head.sent == head.bytes.len() {
                self.chunks.pop_front();
            }
        }
    }

    fn swallow_all(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }
}

/// Copies `src` to `dst` until `src` ends (then half-closes `dst`), an
/// error, or the link closes.
pub(super) async fn pipe<R, W>(
    src: &mut R,
    dst: &mut W,
    way: Way,
    shared: &Shared,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut state: watch::Receiver<State> = shared.state.subscribe();
    let mut buf = vec![0u8; CHUNK];
    let now = Instant::now();
    let mut queue = Queue {
        chunks: VecDeque::new(),
        bytes: 0,
        last_due: now,
        paced_until: now,
        rng: SplitMix(shared.seed.fetch_add(1, Ordering::Relaxed)),
    };
    let mut eof = false;
    loop {
        if queue.chunks.is_empty() {
            if eof {
                return dst.shutdown().await;
            }
            if !shared.faulty.load(Ordering::Acquire) {
                let n = src.read(&mut buf).await?;
                if n == 0 {
                    eof = true;
                    continue;
                }
                // A fault added while the read waited applies to this chunk.
                if !shared.faulty.load(Ordering::Acquire) {
                    dst.write_all(&buf[..n]).await?;
                    shared.totals.add(way, n);
                    continue;
                }
                let effects = Effects::of(state.borrow_and_update().faults(), way);
                queue.arrive(&buf[..n], &effects);
                continue;
            }
        }
        let effects = {
            let now = state.borrow_and_update();
            if now.closed {
                return Ok(());
            }
            Effects::of(now.faults(), way)
        };
        if effects.blackhole {
            queue.swallow_all();
        }
        let due = queue.next_due(&effects);
        tokio::select! {
            read = src.read(&mut buf), if !eof && queue.bytes < MAX_QUEUED => {
                match read? {
                    0 => eof = true,
                    n => queue.arrive(&buf[..n], &effects),
                }
            }
            () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                if let Some(slice) = queue.next_slice(&effects) {
                    dst.write_all(slice).await?;
                    let n = slice.len();
                    shared.totals.add(way, n);
                    queue.advance(n);
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
