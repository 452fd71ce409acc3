//! First contact: before anything starts, every service's program must be
//! there to run. A typo in `command` would otherwise surface as a start
//! that fails again and again until the start limit, read as "not healthy".
//! For image services: the engine answers (within a second), it has the
//! image (soak never pulls), and no earlier soak run left containers running.

use crate::config::{Config, ConfigError};
use crate::container::Engine;
use crate::plan::Plan;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Checks that each planned service's program exists and is executable: a
/// path with a `/` against the service's cwd, a bare name on the service's
/// PATH (the one it will be started with). The error is located at the
/// service's `command` in the config file.
pub fn preflight(config: &Config, plan: &Plan) -> Result<(), ConfigError> {
    images(config, plan)?;
    for sp in plan.services.iter().filter(|sp| sp.image.is_none()) {
        let Some(program) = sp.argv.first() else {
            continue;
        };
        let path = sp
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if let Err((message, help)) = resolve(program, &sp.cwd, &path) {
            return Err(config.error_at_command(&sp.name, message, Some(help)));
        }
    }
    Ok(())
}

/// How long the engine may take to answer the image and leftover checks.
const PREFLIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The engine, the images and what earlier runs left, for the image
/// services of the plan; no engine is contacted for a plan without one.
fn images(config: &Config, plan: &Plan) -> Result<(), ConfigError> {
    let services: Vec<(&str, &str)> = plan
        .services
        .iter()
        .filter_map(|sp| Some((sp.name.as_str(), sp.image.as_deref()?)))
        .collect();
    let Some(&(first, _)) = services.first() else {
        return Ok(());
    };
    let checked = crate::container::blocking(async || {
        let engine = Engine::connect()
            .await
            .map_err(|e| (first, e.to_string()))?;
        // An engine that answered its ping can still hang on a request (a
        // wedged daemon): bounded, so a start says so instead of waiting.
        let checks = async {
            for (name, image) in &services {
                engine
                    .image_stop_signal(image)
                    .await
                    .map_err(|e| (*name, e.to_string()))?;
            }
            engine.leftovers().await.map_err(|e| (first, e.to_string()))
        };
        tokio::time::timeout(PREFLIGHT_TIMEOUT, checks)
            .await
            .unwrap_or_else(|_| {
                Err((
                    first,
                    format!(
                        "the container engine at {} answered its ping but not the image and \
                         container checks within {} s",
                        engine.address,
                        PREFLIGHT_TIMEOUT.as_secs()
                    ),
                ))
            })
    });
    let left = match checked {
        Some(Ok(left)) => left,
        Some(Err((name, message))) => return Err(config.error_at_image(name, message, None)),
        None => {
            return Err(config.error_at_image(
                first,
                "cannot reach the container engine: the check itself failed".into(),
                None,
            ));
        }
    };
    if left.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = left
        .iter()
        .map(|c| {
            format!(
                "{} ({} of run {})",
                &c.id[..c.id.len().min(12)],
                c.service,
                c.run
            )
        })
        .collect();
    Err(config.error_at_image(
        first,
        format!(
            "{} container(s) of an earlier soak run still run, and no soak owns them: {}",
            left.len(),
            list.join(", ")
        ),
        Some(format!(
            "they may hold this run's ports or data; remove them: {}",
            crate::container::removal_hint()
        )),
    ))
}

/// Where `program` would be found, or what is wrong and what to do.
fn resolve(program: &str, cwd: &Path, path: &str) -> Result<PathBuf, (String, String)> {
    if program.contains('/') {
        let full = cwd.join(program);
        return match std::fs::metadata(&full) {
            Err(_) => Err((
                format!("`{program}` does not exist ({})", full.display()),
                format!(
                    "build or install it, or fix the path: a relative path is taken from the \
                     service's cwd, {}",
                    cwd.display()
                ),
            )),
            Ok(m) if !m.is_file() => Err((
                format!("`{program}` is not a file ({})", full.display()),
                "name the program to run".into(),
            )),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Err((
                format!("`{program}` is not executable ({})", full.display()),
                format!("chmod +x {}", full.display()),
            )),
            Ok(_) => Ok(full),
        };
    }
    std::env::split_paths(path)
        .map(|d| cwd.join(d).join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            (
                format!("`{program}` does not exist on the service's PATH"),
                "install it, or give its path (with a `/`, e.g. \"./bin/NAME\")".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("soak.toml");
        std::fs::write(&file, toml).unwrap();
        let config = Config::load(&file).unwrap();
        let plan = Plan::new(&config, &[], &dir.path().join("run")).unwrap();
        preflight(&config, &plan).map_err(|e| e.to_string())
    }

    #[test]
    fn a_missing_program_is_an_error_at_its_command() {
        let e = check("[services.gw]\ncommand = [\"./target/gw\", \"--port\", \"{port}\"]\n")
            .unwrap_err();
        assert!(e.contains("`./target/gw` does not exist"), "{e}");
        assert!(e.contains("soak.toml:2:11"), "{e}");
        let e = check("[services.gw]\ncommand = [\"no-such-program-soak\"]\n").unwrap_err();
        assert!(e.contains("does not exist on the service's PATH"), "{e}");
    }

    #[test]
    fn a_program_on_path_or_by_path_passes() {
        check("[services.a]\ncommand = [\"sh\", \"-c\", \"true\"]\n").unwrap();
        check("[services.a]\ncommand = [\"/bin/sh\"]\n").unwrap();
    }

    #[test]
    fn a_file_that_is_not_executable_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gw"), "").unwrap();
        let (m, help) = resolve("./gw", dir.path(), "").unwrap_err();
        assert!(m.contains("is not executable"), "{m}");
        assert!(help.starts_with("chmod +x"), "{help}");
    }
}
