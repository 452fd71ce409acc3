//! soak's HTTP client against real servers that frame replies the ways
//! services in the field do: chunked on a keep-alive connection, interim
//! 1xx replies, Transfer-Encoding with a Content-Length, bodies cut short by
//! a close, bodies over the cap, and Node listening on `localhost`, which
//! Node 17+ binds to ::1 where the resolver says so. The servers are
//! `tests/http/server.py` (Python 3) and Node 20 scripts, each a child
//! process killed by pid when its test ends.

use soak::http::{HttpError, MAX_BODY, Response, request};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Far above a loopback exchange, so only a client that waits for a close
/// that never comes (or a broken machine) reaches it.
const DEADLINE: Duration = Duration::from_secs(10);

/// A server child that prints its port on its first line.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(program: &str, args: &[&str]) -> Server {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut server = Server { child, port: 0 };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{program} {args:?} printed no port within 20 s"));
        server.port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{program} {args:?} printed {line:?}, not a port"));
        server
    }

    fn python(mode: &str, family: &str) -> Server {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http/server.py");
        Server::start("python3", &[script, mode, family])
    }

    /// Node's own http server, `res.write` then `res.end`, so the reply is
    /// chunked; bound to `host`.
    fn node(host: &str) -> Server {
        let script = format!(
            "const s = require('http').createServer((q, r) => {{ r.write('o'); r.end('k'); }});
             s.listen(0, {host:?}, () => console.log(s.address().port));"
        );
        Server::start("node", &["-e", &script])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Child::kill signals this child's own pid, nothing by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get(url: &str) -> Result<Response, HttpError> {
    request("GET", url, &[], None, DEADLINE).await
}

async fn get_mode(mode: &str) -> Result<Response, HttpError> {
    let server = Server::python(mode, "4");
    get(&format!("http://127.0.0.1:{}/", server.port)).await
}

#[tokio::test]
async fn chunked_reply_on_a_kept_alive_connection_completes_without_a_close() {
    let r = get_mode("chunked-keepalive").await.expect("complete reply");
    assert_eq!((r.status, r.body.as_str()), (200, "hello world"));
}

#[tokio::test]
async fn interim_1xx_replies_are_skipped_for_the_final_status() {
    let r = get_mode("interim-then-final").await.expect("final reply");
    assert_eq!((r.status, r.body.as_str()), (201, "final"));
}

#[tokio::test]
async fn transfer_encoding_overrides_content_length() {
    let r = get_mode("te-and-cl").await.expect("chunked body");
    assert_eq!((r.status, r.body.as_str()), (200, "abcdef"));
}

#[tokio::test]
async fn chunked_body_cut_by_a_close_is_an_error() {
    let e = get_mode("truncated-chunked").await.unwrap_err();
    assert!(
        matches!(&e, HttpError::Malformed(m) if m.contains("before its last chunk")),
        "{e}"
    );
}

#[tokio::test]
async fn body_shorter_than_its_content_length_is_an_error() {
    let e = get_mode("truncated-length").await.unwrap_err();
    assert!(
        matches!(&e, HttpError::Malformed(m) if m.contains("after 10 of 100 body bytes")),
        "{e}"
    );
}

#[tokio::test]
async fn bodies_over_the_cap_are_an_error_however_framed() {
    for mode in ["big-length", "big-chunked", "big-until-close"] {
        let e = get_mode(mode).await.unwrap_err();
        assert_eq!(e, HttpError::BodyTooLarge(MAX_BODY), "{mode}");
        assert!(e.to_string().contains("larger than 1048576 bytes"), "{e}");
    }
}

#[tokio::test]
async fn localhost_reaches_a_server_on_ipv6_loopback_only() {
    let server = Server::python("ok-keepalive", "6");
    let r = get(&format!("http://localhost:{}/", server.port))
        .await
        .expect("reached over ::1");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let r = get(&format!("http://[::1]:{}/", server.port))
        .await
        .expect("reached by literal");
    assert_eq!(r.status, 200);
    // The IPv4 literal must not reach it: the server really is ::1 only.
    let e = get(&format!("http://127.0.0.1:{}/", server.port))
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Connect(_)), "{e}");
}

#[tokio::test]
async fn node_listening_on_localhost_is_reached_through_localhost() {
    // Whichever address this machine's resolver gives Node for localhost,
    // and Node bound explicitly to ::1 as it does where /etc/hosts lists
    // ::1 first.
    for host in ["localhost", "::1"] {
        let server = Server::node(host);
        let r = get(&format!("http://localhost:{}/health", server.port))
            .await
            .unwrap_or_else(|e| panic!("node on {host}: {e}"));
        assert_eq!((r.status, r.body.as_str()), (200, "ok"), "node on {host}");
    }
}

#[tokio::test]
async fn connect_error_names_every_address_tried() {
    // Bind then drop a port so that nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let e = get(&format!("http://localhost:{port}/")).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains(&format!("[::1]:{port}")),
        "{text}"
    );
}
