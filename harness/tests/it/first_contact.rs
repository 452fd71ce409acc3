//! A new user's first run: a program that does not exist is a config error
//! at its line, and a service that never gets healthy is inconclusive, never
//! a FAIL of the service.

use crate::common::Sandbox;
use std::time::Duration;

fn chaos(sandbox: &Sandbox, scenario: &str) -> (Option<i32>, String) {
    std::fs::create_dir_all(sandbox.path().join("scenarios")).unwrap();
    std::fs::write(sandbox.path().join("scenarios/first.toml"), scenario).unwrap();
    let child = sandbox
        .soak(&["chaos", "first", "--plain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = crate::common::Running { child: Some(child) };
    let (code, out, err) = running.finish(Duration::from_secs(120));
    (code, format!("{out}{err}"))
}

const SCENARIO: &str = "config = \"../soak.toml\"\nduration = \"3s\"\n\
                        [[steps]]\nat = \"1s\"\naction = \"kill\"\ntarget = \"svc\"\n\
                        [expect]\nhealthy_within = \"5s\"\n";

#[test]
fn a_program_that_does_not_exist_is_a_config_error_at_its_command() {
    let sandbox = Sandbox::new(
        "[services.svc]\ncommand = [\"./no-such-server\", \"--port\", \"{port}\"]\n\
         [services.svc.health]\ntcp = \"127.0.0.1:{port}\"\n",
    );
    let (code, out) = chaos(&sandbox, SCENARIO);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("soak.toml:2:11"),
        "names the command's place:\n{out}"
    );
    assert!(out.contains("no-such-server"), "{out}");
}

#[test]
fn a_service_that_never_gets_healthy_is_inconclusive_not_failed() {
    // Runs, but never listens where its probe looks.
    let sandbox = Sandbox::new(
        "[services.svc]\ncommand = [\"sleep\", \"60\"]\n\
         [services.svc.health]\ntcp = \"127.0.0.1:{port}\"\ninterval = \"200ms\"\nstart_grace = \"2s\"\n",
    );
    let (code, out) = chaos(&sandbox, SCENARIO);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("verdict: INCONCLUSIVE"), "{out}");
    assert!(!out.contains("verdict: FAIL"), "{out}");
}
