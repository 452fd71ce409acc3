//! Bad configs give file:line:col errors and exit 2; `soak validate` passes good ones.

use crate::common::*;

fn validate_error(config: &str) -> String {
    let sb = Sandbox::new(config);
    let out = sb.soak(&["validate", "soak.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn unknown_key_names_the_line_and_suggests_the_right_one() {
    insta::assert_snapshot!(validate_error(
        "[services.gateway]\ncommand = [\"./gw\"]\nrestart_dely = \"1s\"\n"
    ));
}

#[test]
fn wrong_type_names_the_value() {
    insta::assert_snapshot!(validate_error(
        "[services.gateway]\ncommand = \"./gw --port 80\"\n"
    ));
}

#[test]
fn bad_duration_says_what_a_duration_looks_like() {
    insta::assert_snapshot!(validate_error(
        "[services.gateway]\ncommand = [\"./gw\"]\nrestart_delay = \"5 mins\"\n"
    ));
}

#[test]
fn missing_command_is_reported_at_its_table() {
    insta::assert_snapshot!(validate_error(
        "[services.gateway]\ncwd = \".\"\n\n[services.store]\ncommand = [\"./store\"]\n"
    ));
}

#[test]
fn probe_without_an_address_says_how_to_write_one() {
    insta::assert_snapshot!(validate_error(
        "[services.gateway]\ncommand = [\"./gw\"]\n\n[services.gateway.health]\ninterval = \"1s\"\nfailures = 3\n"
    ));
}

#[test]
fn workload_naming_a_missing_service_is_caught() {
    insta::assert_snapshot!(validate_error(
        "[services.store]\ncommand = [\"./store\"]\n\n[workloads.items]\nservice = \"stor\"\nread = { url = \"http://127.0.0.1:{port}/\" }\n"
    ));
}

#[test]
fn a_good_config_validates() {
    let sb = Sandbox::new("[services.a]\ncommand = [\"true\"]\n");
    let out = sb.soak(&["validate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn the_bundled_fixture_config_validates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/soak.toml");
    let out = std::process::Command::new(soak_bin())
        .args(["validate", path])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// `soak run` flags out of range are usage errors (exit 2) that say the
/// limit, before anything starts.
#[test]
fn soak_run_rejects_a_zero_duration_and_a_report_loop() {
    let sb = Sandbox::new("");
    for (args, says) in [
        (&["--seconds", "0"][..], "above zero"),
        (&["--report-every", "0s"][..], "at least 1s"),
        (&["--report-every", "soon"][..], "soon"),
    ] {
        let mut all = vec!["run", "nowhere.toml"];
        all.extend_from_slice(args);
        let out = sb.soak(&all).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!sb.path().join("reports").exists(), "nothing may start");
}
