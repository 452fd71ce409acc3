//! How tests find the fixture services, shared by every test binary.
//!
//! The fixture binaries come from the same cargo build as the tests:
//! `cargo nextest run --workspace` (and `cargo test --workspace`) builds
//! them because the fixtures package has an integration test of its own.
//! A test binary lives in `<target>/<profile>/deps/`, the binaries one level
//! up, so the directory is derived from the running test executable. That
//! holds under `CARGO_TARGET_DIR`, `--release`, `--target` and in an
//! extracted nextest archive, where compile-time paths (`env!`) would point
//! at the machine that built it. `CARGO_BIN_EXE_*` cannot name them: cargo
//! sets it only for binaries of the package under test.
//!
//! `fixtures/soak.toml` names its binaries as `../target/debug/NAME` for
//! the README's demo; tests run a copy that names the binaries this build
//! made, so they never run a stale or missing one.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub mod run;

/// The workspace root.
pub fn repo() -> PathBuf {
    // Cargo and nextest set it at run time too; nextest's is right for an
    // archive run with --workspace-remap, the compile-time one is not.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The directory cargo wrote this build's binaries to.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("a test executable under <target>/<profile>/deps")
        .to_path_buf()
}

/// The soak binary of this build.
pub fn soak_bin() -> PathBuf {
    // nextest sets this at run time, so it is right in an extracted archive
    // too; cargo's compile-time path is right for a plain `cargo test`.
    std::env::var_os("NEXTEST_BIN_EXE_soak")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_soak")))
}

/// A fixture binary of this build, or why it is missing.
pub fn fixture_bin(name: &str) -> Result<PathBuf, String> {
    let path = bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "fixture binary {} is missing: run the tests with --workspace \
             (`cargo nextest run --workspace` builds the fixtures) or `cargo build -p fixtures` first",
            path.display()
        ))
    }
}

/// The text of `fixtures/soak.toml` with each service's program pointing
/// at this build's binary, and its runs kept next to the copy (`reports =
/// "reports"`) rather than in the repository.
pub fn fixture_config() -> Result<String, String> {
    let path = repo().join("fixtures/soak.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let services = doc
        .get_mut("services")
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| format!("{}: no [services]", path.display()))?;
    for (name, service) in services.iter_mut() {
        let program = service
            .get_mut("command")
            .and_then(toml::Value::as_array_mut)
            .and_then(|argv| argv.first_mut())
            .ok_or_else(|| format!("{}: service {name} has no command", path.display()))?;
        // The README's demo runs the default debug build from the
        // repository root; anything else there is a change to look at.
        let binary = program
            .as_str()
            .and_then(|p| p.strip_prefix("../target/debug/"))
            .ok_or_else(|| {
                format!(
                    "{}: service {name} runs {program}, expected ../target/debug/NAME",
                    path.display()
                )
            })?;
        *program = toml::Value::String(fixture_bin(binary)?.display().to_string());
    }
    doc.entry("harness")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| format!("{}: [harness] is not a table", path.display()))?
        .insert("reports".into(), toml::Value::String("reports".into()));
    toml::to_string(&doc).map_err(|e| e.to_string())
}

/// A temporary copy of the repository's `scenarios/` and of
/// `fixtures/soak.toml` (see [`fixture_config`]), laid out like the
/// repository so each scenario's `config = "../fixtures/soak.toml"` finds
/// the copy. Removed when dropped.
pub struct Bundled {
    pub dir: tempfile::TempDir,
}

impl Bundled {
    pub fn new() -> Result<Bundled, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (scenarios, fixtures) = (dir.path().join("scenarios"), dir.path().join("fixtures"));
        for d in [&scenarios, &fixtures] {
            std::fs::create_dir(d).map_err(|e| e.to_string())?;
        }
        std::fs::write(fixtures.join("soak.toml"), fixture_config()?).map_err(|e| e.to_string())?;
        for path in scenario_files()? {
            let to = scenarios.join(path.file_name().expect("a file name"));
            std::fs::copy(&path, to).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(Bundled { dir })
    }

    /// The copy of `scenarios/NAME.toml`.
    pub fn scenario(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join("scenarios")
            .join(format!("{name}.toml"))
    }
}

/// The repository's `scenarios/*.toml`, sorted.
pub fn scenario_files() -> Result<Vec<PathBuf>, String> {
    let dir = repo().join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// nginx, master and 2 workers, as the tests run it from Debian's package.
/// nginx takes its port only from its config file, so a test's command
/// renders this template (`@PORT@`) into the data dir with the port soak
/// picked and then execs nginx (same pid: the incarnation's pid is the
/// master's). Relative paths resolve against the prefix (`-p`), the data
/// dir: nothing is written to /var/log/nginx, /var/lib/nginx or /run.
pub const NGINX_CONF: &str = r#"master_process on;
worker_processes 2;
pid nginx.pid;
lock_file nginx.lock;
error_log stderr notice;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    server {
        listen 127.0.0.1:@PORT@;
        location / { return 200 "ok\n"; }
    }
}
"#;
