//! The read-back of acknowledged writes through real `soak run`s: every
//! write the journal holds is read back (not only the newest ones soak kept
//! in memory), and a store that silently evicts its oldest writes fails with
//! their keys named.

#[path = "it/common.rs"]
mod common;
mod support;

use common::Sandbox;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Runs `soak run SCENARIO` in `sb` and returns its exit code, bounded in
/// time (soak stops its own services; the timeout only guards the test).
fn run(sb: &Sandbox, scenario: &str, limit: Duration) -> i32 {
    let mut child = sb
        .soak(&["run", "--plain", scenario])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("soak run {scenario} took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The run's read-back event detail and `writes` row count for `workload`.
fn readback(sb: &Sandbox, workload: &str) -> (Value, u64) {
    let path = sb.journal_path();
    let db = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM writes WHERE workload = ?1",
            [workload],
            |r| r.get(0),
        )
        .unwrap();
    let detail: String = db
        .query_row(
            "SELECT detail FROM events WHERE kind = 'readback' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a readback event");
    (serde_json::from_str(&detail).unwrap(), rows as u64)
}

fn assertion(sb: &Sandbox, name: &str) -> Value {
    let report = sb.path().join("reports/latest/report.json");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    report["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no {name} assertion in {report}"))
        .clone()
}

#[test]
fn every_acknowledged_write_in_the_journal_is_read_back() {
    // The fixture store at a rate this shared test machine sustains
    // (~1000 answered requests a second in a debug build, half of them
    // writes): tens of thousands of writes, each read back.
    let mut config: toml::Table = toml::from_str(&common::fixture_config()).unwrap();
    config["workloads"]["items"]
        .as_table_mut()
        .unwrap()
        .insert("rate".into(), "1500/s".into());
    let sb = Sandbox::new(&toml::to_string(&config).unwrap());
    std::fs::write(
        sb.path().join("many-writes.toml"),
        "config = \"soak.toml\"\nservices = [\"store\"]\nworkloads = [\"items\"]\nduration = \"40s\"\n\
         [expect]\nwrites_survive = \"items\"\n",
    )
    .unwrap();
    let code = run(&sb, "many-writes.toml", Duration::from_secs(240));
    let (rb, rows) = readback(&sb, "items");
    assert!(rows > 5_000, "only {rows} writes acknowledged: {rb}");
    assert_eq!(rb["acknowledged"], rows, "{rb}");
    assert_eq!(rb["checked"], rows, "{rb}");
    assert_eq!(rb["missing_count"], 0, "{rb}");
    assert_eq!(rb["unchecked"], 0, "{rb}");
    let a = assertion(&sb, "writes_survive");
    assert_eq!(a["verdict"], "pass", "{a}");
    assert_eq!(
        a["reason"],
        format!("all {rows} acknowledged writes of items readable after the run")
    );
    assert_eq!(code, 0);
}

/// A key-value store over HTTP that keeps only its newest `KEEP` writes:
/// every write is acknowledged, the oldest are silently dropped.
const EVICTING_STORE: &str = r#"
import collections, http.server, json, sys, threading
KEEP = int(sys.argv[2])
items, lock = collections.OrderedDict(), threading.Lock()

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, "ok")
        with lock:
            value = items.get(self.path.removeprefix("/items/"))
        self.reply(404, "not found") if value is None else self.reply(200, value)

    def do_POST(self):
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            items[doc["key"]] = doc["value"]
            while len(items) > KEEP:
                items.popitem(last=False)
        self.reply(201, "created")

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

#[test]
fn a_store_that_evicts_its_oldest_writes_fails_naming_them() {
    let keep = 300;
    let config = format!(
        r#"
[harness]
reports = "reports"
sample_every = "1s"

[services.kv]
command = ["python3", "kv.py", "{{port}}", "{keep}"]
stop = {{ signal = "TERM", grace = "2s" }}

[services.kv.health]
http = "http://127.0.0.1:{{port}}/health"
expect_body = "ok"

[workloads.items]
service = "kv"
write = {{ method = "POST", url = "http://127.0.0.1:{{port}}/items", body = '{{"key":"{{key}}","value":"{{value}}"}}', headers = {{ "Content-Type" = "application/json" }}, expect_status = 201 }}
read = {{ method = "GET", url = "http://127.0.0.1:{{port}}/items/{{key}}", expect_status = 200, expect_body = "{{value}}" }}
rate = "100/s"
"#
    );
    let sb = Sandbox::new(&config);
    std::fs::write(sb.path().join("kv.py"), EVICTING_STORE).unwrap();
    std::fs::write(
        sb.path().join("evicts.toml"),
        "config = \"soak.toml\"\nworkloads = [\"items\"]\nduration = \"12s\"\n\
         [expect]\nwrites_survive = \"items\"\n",
    )
    .unwrap();
    let code = run(&sb, "evicts.toml", Duration::from_secs(120));
    let (rb, rows) = readback(&sb, "items");
    assert!(rows > keep + 100, "only {rows} writes acknowledged: {rb}");
    assert_eq!(rb["acknowledged"], rows, "{rb}");
    // Keys are unique, so the store holds exactly its newest `keep`.
    assert_eq!(rb["missing_count"], rows - keep, "{rb}");
    assert_eq!(rb["unchecked"], 0, "{rb}");
    // Missing writes are named in journal order: the first write
    // acknowledged was the first evicted.
    let first: String = rusqlite::Connection::open(sb.journal_path())
        .unwrap()
        .query_row("SELECT key FROM writes ORDER BY rowid LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rb["missing"][0], format!("{first}: status 404"), "{rb}");
    let a = assertion(&sb, "writes_survive");
    assert_eq!(a["verdict"], "fail", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "{} of {rows} acknowledged write(s) of items missing after the run: {first}, ",
            rows - keep
        )),
        "{reason}"
    );
    assert_eq!(code, 1);
}
