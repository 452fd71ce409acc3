//! A real Prometheus server (Debian's `prometheus`) for the tests that check
//! soak's `/metrics` from the other end: started on loopback with a temp
//! config and storage, scraping its targets every second, killed by pid and
//! reaped when dropped. Included with `#[path]` by the tests that use it;
//! each uses part of it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `bin` runs. Under CI (`CI=true`) a missing program fails the
/// test: a CI machine without it would otherwise pass vacuously.
pub fn have(bin: &str, package: &str) -> bool {
    let found = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{bin} is missing under CI: install {package} (scripts/test does)"
        );
        eprintln!("{bin} not installed ({package}); skipping");
    }
    found
}

pub struct Prometheus {
    process: Child,
    api: String,
    /// Prometheus's own log, for the failure message.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Prometheus {
    pub fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: soak\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("prometheus.log");
        let process = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus runs");
        Prometheus {
            process,
            api: format!("http://127.0.0.1:{port}/api/v1"),
            log,
            _dir: dir,
        }
    }

    /// GETs an API path; None while the server is not answering yet.
    async fn get(&self, path: &str) -> Option<serde_json::Value> {
        let r = soak::http::request(
            "GET",
            &format!("{}{path}", self.api),
            &[],
            None,
            Duration::from_secs(5),
        )
        .await
        .ok()?;
        serde_json::from_str(&r.body).ok()
    }

    /// Waits (at most 60 s) until every target was scraped once, and fails
    /// with Prometheus's own words if a scrape went wrong.
    pub async fn wait_for_scrapes(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = self.get("/targets").await {
                let targets = v["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for t in &targets {
                    let error = t["lastError"].as_str().unwrap_or("");
                    assert!(
                        error.is_empty(),
                        "Prometheus could not scrape {}: {error}",
                        t["scrapeUrl"]
                    );
                }
                if !targets.is_empty() && targets.iter().all(|t| t["health"] == "up") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never scraped its targets; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The series of an instant query: (labels, value); None while the
    /// server is not answering yet.
    pub async fn query(&self, promql: &str) -> Option<Vec<(serde_json::Value, f64)>> {
        let q: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        let v = self.get(&format!("/query?query={q}")).await?;
        let result = v["data"]["result"].as_array()?.clone();
        Some(
            result
                .into_iter()
                .filter_map(|s| {
                    let value = s["value"][1].as_str()?.parse().ok()?;
                    Some((s["metric"].clone(), value))
                })
                .collect(),
        )
    }

    /// The value of an instant query with exactly one series in its answer.
    pub async fn query_one(&self, promql: &str) -> f64 {
        let series = self.query(promql).await.expect("query answered");
        assert_eq!(series.len(), 1, "{promql}: {series:?}");
        series[0].1
    }
}
