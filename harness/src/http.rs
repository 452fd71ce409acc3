//! A minimal HTTP/1.1 client for probes and workloads: one request per
//! connection, loopback only, every step under one deadline.
//!
//! soak only ever talks to services on this machine, so a full client (TLS,
//! proxies, pooling) would be weight without use; what matters is that a
//! stalled service cannot stall soak, hence the single deadline.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bodies larger than this are cut; probes and reads need a prefix only.
const MAX_BODY: usize = 1 << 20;

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
}

/// Splits `http://host:port/path` and resolves it to a loopback address.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String), HttpError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::BadUrl(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = loopback_addr(authority, 80).map_err(|e| match e {
        HttpError::BadUrl(_) => HttpError::BadUrl(url.into()),
        e => e,
    })?;
    Ok((addr, authority.to_string(), path.to_string()))
}

/// Resolves `host:port` (port optional) and insists on loopback.
pub fn loopback_addr(authority: &str, default_port: u16) -> Result<SocketAddr, HttpError> {
    let bad = || HttpError::BadUrl(authority.into());
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(bad)?;
        (h, p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port: u16 = match port {
        Some(p) => p.parse().map_err(|_| bad())?,
        None => default_port,
    };
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        // A name other than localhost would need DNS and could leave the machine.
        host.parse()
            .map_err(|_| HttpError::NotLoopback(host.into()))?
    };
    if !ip.is_loopback() {
        return Err(HttpError::NotLoopback(host.into()));
    }
    Ok(SocketAddr::new(ip, port))
}

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let (addr, host, path) = parse_url(url)?;
    let ms = timeout.as_millis() as u64;
    tokio::time::timeout(timeout, exchange(addr, &host, &path, method, headers, body))
        .await
        .map_err(|_| HttpError::Timeout(ms))?
}

async fn exchange(
    addr: SocketAddr,
    host: &str,
    path: &str,
    method: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Response, HttpError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| HttpError::Connect(e.to_string()))?;
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
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(done) = complete(&buf)
            && done
        {
            break;
        }
        if buf.len() > MAX_BODY + 65536 {
            break;
        }
    }
    parse_response(&buf)
}

/// Some(true) once headers and a Content-Length body are complete, so a
/// service that keeps the connection open does not cost a timeout.
fn complete(buf: &[u8]) -> Option<bool> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    })?;
    Some(buf.len() >= end + 4 + len)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn parse_response(buf: &[u8]) -> Result<Response, HttpError> {
    let end = find(buf, b"\r\n\r\n").ok_or_else(|| {
        HttpError::Malformed(if buf.is_empty() {
            "connection closed without a response".into()
        } else {
            "no end of headers".into()
        })
    })?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| HttpError::Malformed(format!("bad status line {status_line:?}")))?;
    let mut body = &buf[end + 4..];
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length")
                && let Ok(n) = v.parse::<usize>()
            {
                body = &body[..n.min(body.len())];
            }
            if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    let body = &body[..body.len().min(MAX_BODY)];
    Ok(Response {
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        data = &data[line_end + 2..];
        if size == 0 || size > data.len() {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_loopback_is_accepted() {
        assert!(parse_url("http://127.0.0.1:8080/health").is_ok());
        assert!(parse_url("http://localhost:1/").is_ok());
        assert!(parse_url("http://[::1]:80/x").is_ok());
        assert_eq!(
            parse_url("http://10.0.0.1:80/").unwrap_err(),
            HttpError::NotLoopback("10.0.0.1".into())
        );
        assert!(parse_url("https://127.0.0.1/").is_err());
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
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_response(&data);
            let _ = dechunk(&data);
        }

        #[test]
        fn arbitrary_urls_never_panic(url in ".{0,64}") {
            let _ = parse_url(&url);
        }
    }
}
