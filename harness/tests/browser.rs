//! The HTML report of a real fixture run, opened in headless Chromium: a
//! real `soak chaos kill-gateway` (bug off: PASS; `orphan-workers` on:
//! FAIL), its page rendered from the run's journal, then loaded by the
//! browser, which must log nothing to its console (no script error, no
//! malformed SVG), must show the verdict and the charts in its DOM, and
//! leaves a screenshot in the run directory for a person to look at.
//!
//! Chromium is required: without it every test fails and says how to
//! install it (CI installs it), rather than passing without having looked.

mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Bundled;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Scenarios last seconds; anything past this is a hang in soak.
const SOAK_TIMEOUT: Duration = Duration::from_secs(180);
/// A cold Chromium start on a busy CI machine takes a few seconds.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` in a process group of its own with stdout and stderr into
/// files, killing the whole group if it overruns `limit` (Chromium forks
/// helpers that must not outlive the test). Returns the exit status's
/// success, stdout and stderr.
fn run_bounded(
    mut cmd: Command,
    out: &Path,
    limit: Duration,
) -> Result<(bool, String, String), Failed> {
    let (stdout, stderr) = (out.with_extension("stdout"), out.with_extension("stderr"));
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout).map_err(|e| e.to_string())?)
        .stderr(File::create(&stderr).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let group = child.id() as i32;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on the process group this function created; helpers
    // still alive after the main process exited are ours to end too.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let (o, e) = (read(&stdout), read(&stderr));
    match status {
        Some(s) => Ok((s.success(), o, e)),
        None => Err(format!("{cmd:?} did not finish within {limit:?}; killed\n{o}{e}").into()),
    }
}

/// A real chaos run of kill-gateway with `bugs`; returns its run directory.
fn chaos(work: &Path, bugs: &str) -> Result<PathBuf, Failed> {
    let bundled = Bundled::new()?;
    let reports = work.join("reports");
    let mut cmd = Command::new(support::soak_bin());
    cmd.arg("chaos")
        .arg(bundled.scenario("kill-gateway"))
        .args(["--plain", "--reports"])
        .arg(&reports)
        .env_remove("STORE_BUGS")
        .env("GATEWAY_BUGS", bugs);
    // Exit 1 (an assertion failed) is what the bug-on run is for.
    let (_, out, err) = run_bounded(cmd, &work.join("soak"), SOAK_TIMEOUT)?;
    std::fs::canonicalize(reports.join("latest"))
        .map_err(|e| format!("no run directory ({e}):\n{out}{err}").into())
}

/// The report.html soak wrote for the run. A missing one is a failure of
/// soak, never something to make up for here.
fn page(run_dir: &Path) -> Result<PathBuf, Failed> {
    let path = run_dir.join("report.html");
    if !path.is_file() {
        return Err(format!("soak wrote no report.html in {}", run_dir.display()).into());
    }
    Ok(path)
}

/// The page must stand alone: no script, and nothing fetched from anywhere.
fn self_contained(html: &str) -> Result<(), Failed> {
    if html.contains("<script") {
        return Err("the page carries a script".into());
    }
    for bad in ["src=", "url(", "@import", "https://", "<link"] {
        if html.contains(bad) {
            return Err(format!("the page refers outside itself: {bad:?}").into());
        }
    }
    if let Some(link) = html.split("href=\"").skip(1).find(|h| !h.starts_with('#')) {
        return Err(format!("a link leaves the page: {}", &link[..link.len().min(60)]).into());
    }
    Ok(())
}

fn chromium(
    profile: &Path,
    args: &[&str],
    url: &str,
    out: &Path,
) -> Result<(String, String), Failed> {
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url);
    let (ok, stdout, stderr) = run_bounded(cmd, out, BROWSER_TIMEOUT)?;
    if !ok {
        return Err(format!("chromium failed:\n{stderr}").into());
    }
    Ok((stdout, stderr))
}

fn open_in_browser(
    bugs: &'static str,
    verdict: &'static str,
    says: &'static str,
) -> Result<(), Failed> {
    if !Path::new(CHROMIUM).exists() {
        return Err(format!(
            "{CHROMIUM} is missing: the report must be checked in a real browser; install it with `apt-get install chromium`"
        )
        .into());
    }
    // Kept after the test (under target/), so the screenshot can be looked at.
    let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(if bugs.is_empty() { "pass" } else { bugs });
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let run_dir = chaos(&work, bugs)?;
    let path = page(&run_dir)?;
    let html = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    self_contained(&html)?;
    let url = format!("file://{}", path.display());

    // Every console message is an error here: the page has no script, so
    // the console only speaks of malformed markup (an SVG path with NaN).
    let (dom, log) = chromium(
        &work.join("profile-dom"),
        &["--enable-logging=stderr", "--v=0", "--dump-dom"],
        &url,
        &work.join("dom"),
    )?;
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    if !console.is_empty() {
        return Err(format!("the browser console reported:\n{}", console.join("\n")).into());
    }
    let word = dom
        .split("id=\"verdict\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .ok_or("no verdict in the rendered page")?;
    if word != verdict {
        return Err(format!("the page says {word}, expected {verdict}").into());
    }
    // The lifecycle strip plus RSS, CPU, fds, threads and the load charts.
    let charts = dom.matches("<svg ").count();
    if charts < 3 {
        return Err(
            format!("{charts} chart(s) in the rendered page, expected the service's").into(),
        );
    }
    if !dom.contains(says) {
        return Err(format!("the rendered page does not say {says:?}").into());
    }

    let shot = run_dir.join("report.png");
    chromium(
        &work.join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
        &url,
        &work.join("shot"),
    )?;
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    if size < 10_000 {
        return Err(format!(
            "the screenshot {} is missing or blank ({size} bytes)",
            shot.display()
        )
        .into());
    }
    println!("screenshot: {}", shot.display());
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("kill_gateway_passes_and_its_report_renders", || {
            open_in_browser("", "PASS", "gateway healthy again")
        }),
        Trial::test(
            "kill_gateway_with_orphans_fails_and_its_report_shows_why",
            || open_in_browser("orphan-workers", "FAIL", "still listening on its port"),
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
