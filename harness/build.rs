//! Names the commit soak was built from, for `soak --version`: a run's
//! journal and a bug report then say exactly which soak judged.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    // Outside a git checkout (a crates.io download) there is no commit to name.
    let commit =
        git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown commit".into());
    println!("cargo:rustc-env=SOAK_COMMIT={commit}");
    // A new commit moves the branch's ref file (or HEAD itself when detached).
    let mut watch = vec!["HEAD".to_string()];
    watch.extend(
        git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|r| r.starts_with("refs/")),
    );
    for path in watch {
        if let Some(file) = git(&["rev-parse", "--git-path", &path]) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
