//! Images for the container tests, built here from local binaries and never
//! pulled: a `FROM scratch` image holding the binaries and the shared
//! libraries `ldd` names for them, built through the engine's API with
//! testcontainers (so Docker Engine and Podman both build it). An image is
//! named by a hash of its files, so it is built once and reused until a
//! binary changes.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use testcontainers::core::BuildImageOptions;
use testcontainers::runners::AsyncBuilder;
use testcontainers::{GenericBuildableImage, bollard::Docker};

/// Runs `f` to completion on a runtime of its own.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}

/// The engine the tests use. Its absence fails the test that needs it:
/// `scripts/test` starts one, so a missing engine is a broken set-up, never
/// a reason to skip.
pub fn engine() -> Docker {
    let docker = Docker::connect_with_defaults().expect("a Docker-API client");
    let address = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "the default socket".into());
    block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(5), docker.ping()).await
    })
    .map_err(|_| "no answer within 5 s".to_string())
    .and_then(|r| r.map_err(|e| e.to_string()))
    .unwrap_or_else(|e| {
        panic!(
            "no container engine at {address} ({e}): run the tests through scripts/test, \
             which starts podman's API service, or start Docker / `podman system service` \
             and set DOCKER_HOST"
        )
    });
    docker
}

/// The shared libraries `ldd` names for `binary`, the loader included.
fn libraries(binary: &Path) -> Vec<PathBuf> {
    let out = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A `FROM scratch` image named `soak-test-NAME` holding each binary at
/// `/BASENAME` and its libraries at their own paths; returns `NAME:TAG`.
pub fn scratch_image(name: &str, binaries: &[PathBuf]) -> String {
    scratch_image_with(name, binaries, "")
}

/// [`scratch_image`] with more Dockerfile lines (`STOPSIGNAL SIGINT`).
pub fn scratch_image_with(name: &str, binaries: &[PathBuf], dockerfile: &str) -> String {
    let mut files: BTreeSet<(PathBuf, String)> = BTreeSet::new();
    for b in binaries {
        let base = b.file_name().expect("a binary's name").to_string_lossy();
        files.insert((b.clone(), base.into_owned()));
        for lib in libraries(b) {
            let target = lib.to_string_lossy().trim_start_matches('/').to_string();
            files.insert((lib, target));
        }
    }
    let mut hasher = DefaultHasher::new();
    dockerfile.hash(&mut hasher);
    for (path, target) in &files {
        target.hash(&mut hasher);
        std::fs::read(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .hash(&mut hasher);
    }
    let (repo, tag) = (
        format!("soak-test-{name}"),
        format!("{:016x}", hasher.finish()),
    );
    let mut image = GenericBuildableImage::new(repo.clone(), tag.clone())
        .with_dockerfile_string(format!("FROM scratch\nCOPY . /\n{dockerfile}"));
    for (path, target) in &files {
        image = image.with_file(path.clone(), target.clone());
    }
    if let Err(e) =
        block_on(image.build_image_with(BuildImageOptions::new().with_skip_if_exists(true)))
    {
        panic!("cannot build {repo}:{tag}: {e}");
    }
    format!("{repo}:{tag}")
}

/// Containers (all states) with `label`, by a plain HTTP request on the
/// engine's unix socket: bollard's typed listing refuses the whole answer
/// when one container is in a state it does not know (Podman's `stopped`,
/// which a container passes through while it is removed).
pub fn containers_with_label(label: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let address =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let path = address
        .strip_prefix("unix://")
        .unwrap_or_else(|| panic!("the tests ask the engine on a unix socket, not {address}"));
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    let filters = serde_json::json!({ "label": [label] }).to_string();
    let query: String = filters
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    // HTTP/1.0: the answer is the body to the end, never chunked.
    write!(
        s,
        "GET /containers/json?all=1&filters={query} HTTP/1.0\r\nHost: engine\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.contains(" 200 "), "the engine answered {head}");
    serde_json::from_str::<Vec<serde_json::Value>>(body).expect("a JSON list of containers")
}
