//! A minimal HTTP/1.1 client for probes and workloads: one request per
//! connection, loopback only, every step under one deadline.
//!
//! soak only ever talks to services on this machine, so a full client (TLS,
//! proxies, pooling) would be weight without use; what matters is that a
//! stalled service cannot stall soak, hence the single deadline, and that a
//! reply is judged by its framing, never by when the server closes: a
//! keep-alive server that ignores `Connection: close` is answered as soon as
//! its reply is complete. The response head and chunk-size lines are parsed
//! by `httparse` (the parser under hyper); the framing rules are RFC 9112
//! §6.3: interim 1xx replies are skipped, Transfer-Encoding overrides
//! Content-Length, a body cut short by a close is an error, and a body
//! larger than [`MAX_BODY`] is an error rather than a silently cut prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Larger bodies are refused with [`HttpError::BodyTooLarge`]: probes and
/// workload reads look for a short value, and soak must not buffer
/// whatever a misbehaving service streams at it.
pub const MAX_BODY: usize = 1 << 20;

/// Bound on a response head (status line and headers) or a trailer section.
const MAX_HEAD: usize = 64 << 10;

/// Bound on the header count, as in hyper's default.
const MAX_HEADERS: usize = 100;

/// Bound on interim (1xx) replies before the final one, so a server cannot
/// keep soak reading `100 Continue` forever within the deadline.
const MAX_INTERIM: usize = 16;

/// Bound on one chunk-size line (hex size plus extensions).
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("bad url `{0}`: expected http://HOST:PORT/PATH")]
    BadUrl(String),
    #[error(
        "`{0}` is not a loopback address: soak only sends traffic to 127.0.0.1, ::1 or localhost"
    )]
    NotLoopback(String),
    #[error("connect: {0}")]
    Connect(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("io: {0}")]
    Io(String),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("response body larger than {0} bytes, the most soak reads")]
    BodyTooLarge(usize),
}

/// Splits `http://host:port/path` into the loopback addresses to try (in
/// order), the Host header value and the path.
pub fn parse_url(url: &str) -> Result<(Vec<SocketAddr>, String, String), HttpError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::BadUrl(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addrs = loopback_addrs(authority, 80).map_err(|e| match e {
        HttpError::BadUrl(_) => HttpError::BadUrl(url.into()),
        e => e,
    })?;
    Ok((addrs, authority.to_string(), path.to_string()))
}

/// Resolves `host:port` (port optional) to one loopback address; `localhost`
/// gives 127.0.0.1. A caller that can try several should use
/// [`loopback_addrs`] and [`connect`], which also reach a service that
/// listens on ::1 only.
pub fn loopback_addr(authority: &str, default_port: u16) -> Result<SocketAddr, HttpError> {
    let (host, port) = split_authority(authority, default_port)?;
    let ip = if is_localhost(host) {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        literal_loopback(host)?
    };
    Ok(SocketAddr::new(ip, port))
}

/// Resolves `host:port` (port optional) to every loopback address it names:
/// an IP literal is itself, and `localhost` is both 127.0.0.1 and ::1, as
/// RFC 6761 §6.3 lets a client decide without asking a resolver (curl and
/// browsers do the same). Which of the two a service binds depends on its
/// runtime and /etc/hosts (Node 17+ takes the resolver's first answer, often
/// ::1), so both are tried; IPv4 first, the common case, since a refused
/// loopback connect costs microseconds. Any other name would need DNS and
/// could leave the machine, so it is refused.
pub fn loopback_addrs(authority: &str, default_port: u16) -> Result<Vec<SocketAddr>, HttpError> {
    let (host, port) = split_authority(authority, default_port)?;
    if is_localhost(host) {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    Ok(vec![SocketAddr::new(literal_loopback(host)?, port)])
}

/// Connects to the first of `addrs` that accepts; the error names every
/// address tried and why it failed.
pub async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, HttpError> {
    let mut failures = Vec::new();
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    Err(HttpError::Connect(if failures.is_empty() {
        "no address to connect to".into()
    } else {
        failures.join("; ")
    }))
}

fn split_authority(authority: &str, default_port: u16) -> Result<(&str, u16), HttpError> {
    let bad = || HttpError::BadUrl(authority.into());
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(bad)?;
        let p = match p {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (h, p)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => default_port,
    };
    Ok((host, port))
}

fn is_localhost(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
}

fn literal_loopback(host: &str) -> Result<IpAddr, HttpError> {
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err(HttpError::NotLoopback(host.into())),
    }
}

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let (addrs, host, path) = parse_url(url)?;
    let ms = timeout.as_millis() as u64;
    tokio::time::timeout(
        timeout,
        exchange(&addrs, &host, &path, method, headers, body),
    )
    .await
    .map_err(|_| HttpError::Timeout(ms))?
}

async fn exchange(
    addrs: &[SocketAddr],
    host: &str,
    path: &str,
    method: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Response, HttpError> {
    let mut stream = connect(addrs).await?;
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: soak/{}\r\nContent-Length: {}\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let io = |e: std::io::Error| HttpError::Io(e.to_string());
    stream.write_all(req.as_bytes()).await.map_err(io)?;
    let mut decoder = Decoder::new(method.eq_ignore_ascii_case("HEAD"));
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return decoder.finish();
        }
        if let Some(response) = decoder.feed(&chunk[..n])? {
            return Ok(response);
        }
    }
}

/// Decodes one complete response held in `buf`, as if the server closed
/// the connection after it: the pure core of [`request`].
pub fn parse_response(buf: &[u8]) -> Result<Response, HttpError> {
    let mut decoder = Decoder::new(false);
    match decoder.feed(buf)? {
        Some(response) => Ok(response),
        None => decoder.finish(),
    }
}

/// Where the decoder is in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a status line and headers; `interim` 1xx replies seen so far.
    Head {
        interim: usize,
    },
    /// Reading a Content-Length body; `left` bytes to go of `total`.
    Length {
        left: usize,
        total: usize,
    },
    ChunkSize,
    ChunkData {
        left: usize,
    },
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer fields after the last chunk, up to an empty line.
    Trailers,
    /// No length given: the body is whatever arrives before the close.
    UntilClose,
    Done,
}

/// An incremental response decoder: bytes go in as they arrive, and the
/// response comes out as soon as its framing says it is complete.
struct Decoder {
    head_request: bool,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    status: u16,
    body: Vec<u8>,
}

impl Decoder {
    fn new(head_request: bool) -> Self {
        Decoder {
            head_request,
            buf: Vec::new(),
            pos: 0,
            state: State::Head { interim: 0 },
            status: 0,
            body: Vec::new(),
        }
    }

    /// Takes the next bytes; `Some` once the response is complete.
    fn feed(&mut self, input: &[u8]) -> Result<Option<Response>, HttpError> {
        self.buf.extend_from_slice(input);
        while self.state != State::Done && self.step()? {}
        // Keep only what is not yet parsed, so a long body is not rescanned.
        self.buf.drain(..self.pos);
        self.pos = 0;
        Ok((self.state == State::Done).then(|| self.response()))
    }

    /// The connection closed: complete if the framing allows it, else an
    /// error that says what was missing.
    fn finish(mut self) -> Result<Response, HttpError> {
        let malformed = |m: String| Err(HttpError::Malformed(m));
        match self.state {
            // The last chunk arrived, so the body is whole; only the
            // trailer section's final CRLF is missing, which costs nothing.
            State::Done | State::UntilClose | State::Trailers => {
                self.state = State::Done;
                Ok(self.response())
            }
            State::Head { interim } if self.buf.is_empty() && interim == 0 => {
                malformed("connection closed without a response".into())
            }
            State::Head { .. } => {
                malformed("connection closed before the end of the headers".into())
            }
            State::Length { left, total } => malformed(format!(
                "connection closed after {} of {total} body bytes (Content-Length)",
                total - left
            )),
            State::ChunkSize | State::ChunkData { .. } | State::ChunkEnd => malformed(format!(
                "connection closed after {} bytes of a chunked body, before its last chunk",
                self.body.len()
            )),
        }
    }

    fn response(&mut self) -> Response {
        Response {
            status: self.status,
            body: String::from_utf8_lossy(&std::mem::take(&mut self.body)).into_owned(),
        }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Takes up to `left` body bytes from the buffer; how many it took.
    fn take(&mut self, left: usize) -> usize {
        let n = left.min(self.avail().len());
        self.body
            .extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    /// One step of the state machine; `false` when it needs more bytes.
    fn step(&mut self) -> Result<bool, HttpError> {
        let malformed = |m: &str| HttpError::Malformed(m.into());
        match self.state {
            State::Head { interim } => self.head(interim),
            State::Length { left, total } => {
                let n = self.take(left);
                self.state = if n == left {
                    State::Done
                } else {
                    State::Length {
                        left: left - n,
                        total,
                    }
                };
                Ok(n > 0 || self.state == State::Done)
            }
            State::ChunkSize => match httparse::parse_chunk_size(self.avail()) {
                Ok(httparse::Status::Complete((used, size))) => {
                    self.pos += used;
                    let size = usize::try_from(size)
                        .ok()
                        .filter(|s| self.body.len().saturating_add(*s) <= MAX_BODY)
                        .ok_or(HttpError::BodyTooLarge(MAX_BODY))?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData { left: size }
                    };
                    Ok(true)
                }
                Ok(httparse::Status::Partial) if self.avail().len() > MAX_CHUNK_LINE => {
                    Err(malformed("chunk-size line longer than 4 KiB"))
                }
                Ok(httparse::Status::Partial) => Ok(false),
                Err(_) => Err(malformed("bad chunk-size line in a chunked body")),
            },
            State::ChunkData { left } => {
                let n = self.take(left);
                self.state = if n == left {
                    State::ChunkEnd
                } else {
                    State::ChunkData { left: left - n }
                };
                Ok(n > 0 || self.state == State::ChunkEnd)
            }
            State::ChunkEnd => match self.avail() {
                [b'\r', b'\n', ..] => {
                    self.pos += 2;
                    self.state = State::ChunkSize;
                    Ok(true)
                }
                [] | [b'\r'] => Ok(false),
                _ => Err(malformed("chunk data not followed by CRLF")),
            },
            State::Trailers => {
                let Some(end) = self.avail().windows(2).position(|w| w == b"\r\n") else {
                    return if self.avail().len() > MAX_HEAD {
                        Err(malformed("trailer section larger than 64 KiB"))
                    } else {
                        Ok(false)
                    };
                };
                // Trailer fields carry nothing soak judges: skip each line
                // up to the empty one that ends the message.
                self.pos += end + 2;
                if end == 0 {
                    self.state = State::Done;
                }
                Ok(true)
            }
            State::UntilClose => {
                let n = self.avail().len();
                if self.body.len() + n > MAX_BODY {
                    return Err(HttpError::BodyTooLarge(MAX_BODY));
                }
                self.take(n);
                Ok(false)
            }
            State::Done => Ok(false),
        }
    }

    /// Parses a status line and headers, then picks the body's framing.
    fn head(&mut self, interim: usize) -> Result<bool, HttpError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut fields);
        let used = match head.parse(&self.buf[self.pos..]) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if self.avail().len() > MAX_HEAD => {
                return Err(HttpError::Malformed(
                    "response head larger than 64 KiB".into(),
                ));
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(HttpError::Malformed(format!("bad response head: {e}"))),
        };
        let status = head.code.unwrap_or(0);
        let framing = framing(head.headers, status, self.head_request);
        self.pos += used;
        if (100..200).contains(&status) && status != 101 {
            // 100 Continue, 103 Early Hints: a final status follows.
            if interim + 1 > MAX_INTERIM {
                return Err(HttpError::Malformed(format!(
                    "more than {MAX_INTERIM} interim 1xx replies"
                )));
            }
            self.state = State::Head {
                interim: interim + 1,
            };
            return Ok(true);
        }
        self.status = status;
        self.state = framing?;
        Ok(true)
    }
}

/// The body framing of a final response, RFC 9112 §6.3.
fn framing(
    headers: &[httparse::Header],
    status: u16,
    head_request: bool,
) -> Result<State, HttpError> {
    if head_request || status == 101 || status == 204 || status == 304 {
        return Ok(State::Done);
    }
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| {
                String::from_utf8_lossy(h.value)
                    .split(',')
                    .map(|v| v.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .filter(|v| !v.is_empty())
    };
    // Transfer-Encoding overrides Content-Length (a sender must not send
    // both; a recipient that trusts the length is how requests get smuggled).
    if let Some(last) = values("transfer-encoding").next_back() {
        return Ok(if last == "chunked" {
            State::ChunkSize
        } else {
            State::UntilClose
        });
    }
    let mut length = None;
    for v in values("content-length") {
        let n: u64 = v
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse().ok())
            .flatten()
            .ok_or_else(|| HttpError::Malformed(format!("bad Content-Length {v:?}")))?;
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::Malformed(
                "conflicting Content-Length values".into(),
            ));
        }
        length = Some(n);
    }
    match length {
        None => Ok(State::UntilClose),
        Some(0) => Ok(State::Done),
        Some(n) => match usize::try_from(n) {
            Ok(n) if n <= MAX_BODY => Ok(State::Length { left: n, total: n }),
            _ => Err(HttpError::BodyTooLarge(MAX_BODY)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_loopback_is_accepted() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 8080));
        assert_eq!(parse_url("http://127.0.0.1:8080/health").unwrap().0, [v4]);
        assert_eq!(
            parse_url("http://[::1]:80/x").unwrap().0,
            [SocketAddr::from((Ipv6Addr::LOCALHOST, 80))]
        );
        assert_eq!(
            parse_url("http://10.0.0.1:80/").unwrap_err(),
            HttpError::NotLoopback("10.0.0.1".into())
        );
        assert_eq!(
            parse_url("http://example.com/").unwrap_err(),
            HttpError::NotLoopback("example.com".into())
        );
        assert!(parse_url("https://127.0.0.1/").is_err());
        assert!(parse_url("http://[::1]x/").is_err());
    }

    #[test]
    fn localhost_is_both_loopback_addresses() {
        let (addrs, host, path) = parse_url("http://LocalHost:9/p").unwrap();
        assert_eq!(
            addrs,
            [
                SocketAddr::from(([127, 0, 0, 1], 9)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, 9))
            ]
        );
        assert_eq!((host.as_str(), path.as_str()), ("LocalHost:9", "/p"));
        assert_eq!(
            loopback_addr("localhost:9", 0).unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 9))
        );
    }

    #[test]
    fn responses_parse_with_length_and_chunks() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        let r = parse_response(
            b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "abcde"));
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\nuntil close").unwrap();
        assert_eq!(r.body, "until close");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let r = parse_response(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "x"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, "abc");
        let r = parse_response(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (204, ""));
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nContent",
            b"",
        ] {
            let e = parse_response(bad).unwrap_err();
            assert!(
                matches!(e, HttpError::Malformed(_)),
                "{}: {e}",
                String::from_utf8_lossy(bad)
            );
        }
        let over = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            parse_response(over.as_bytes()).unwrap_err(),
            HttpError::BodyTooLarge(MAX_BODY)
        );
        let at_cap = [
            format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY}\r\n\r\n").into_bytes(),
            vec![b'x'; MAX_BODY],
        ]
        .concat();
        assert_eq!(parse_response(&at_cap).unwrap().body.len(), MAX_BODY);
    }

    /// A body sent chunked in pieces of `sizes`, arriving in reads of
    /// `splits` bytes, decodes to itself, complete without a close.
    fn chunked_round_trip(body: &[u8], sizes: &[usize], splits: &[usize]) -> Option<Response> {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut rest = body;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
            rest = tail;
        }
        wire.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
        let mut decoder = Decoder::new(false);
        let mut at = 0;
        for &n in splits.iter().cycle() {
            let end = (at + n.max(1)).min(wire.len());
            let done = decoder.feed(&wire[at..end]).expect("well-formed");
            at = end;
            if done.is_some() || at == wire.len() {
                return done;
            }
        }
        None
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_response(&data);
        }

        #[test]
        fn arbitrary_urls_never_panic(url in ".{0,64}") {
            let _ = parse_url(&url);
        }

        #[test]
        fn chunked_bodies_decode_however_they_arrive(
            body in "[a-z]{0,300}",
            sizes in proptest::collection::vec(1usize..40, 1..5),
            splits in proptest::collection::vec(1usize..50, 1..5),
        ) {
            let r = chunked_round_trip(body.as_bytes(), &sizes, &splits);
            prop_assert_eq!(r.map(|r| r.body), Some(body));
        }
    }
}
