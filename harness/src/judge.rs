//! Judging a run from its journal alone: the scenario is rebuilt from the
//! copies the journal keeps, the verdicts are computed, and the report
//! files written. The end of a run, `soak report` and the partial report
//! child all come here, so a report can always be rebuilt.

use crate::config::scenario::Scenario;
use crate::journal::{self, RunData};
use crate::report::{self, Report};
use crate::verdict;
use std::path::Path;

/// Rebuilds a scenario from the copies its journal keeps.
pub fn scenario_from_journal(run: &journal::RunRow) -> Option<Scenario> {
    let (path, toml) = (run.scenario_path.as_ref()?, run.scenario_toml.as_ref()?);
    let (config_path, config) = (run.config_path.clone()?, run.config.clone()?);
    Scenario::parse_with(Path::new(path), toml, |_| {
        crate::config::Config::parse(Path::new(&config_path), &config)
    })
    .ok()
}

/// Judges a finished (or interrupted, or running) run and writes its report
/// files: report.json, junit.xml and report.html.
pub fn judge_and_report(run_dir: &Path) -> Result<Report, String> {
    // The sample tables stay in the journal, read one incarnation or one
    // aggregate at a time: this runs every few minutes on the host being
    // soaked.
    let data = RunData::open(&run_dir.join("journal.sqlite")).map_err(|e| e.to_string())?;
    let sc = data.run.as_ref().and_then(scenario_from_journal);
    let assertions = sc
        .as_ref()
        .map(|s| verdict::judge(s, &data))
        .unwrap_or_default();
    let report = report::build(&data, sc.map(|s| s.description), assertions);
    report::write(run_dir, &report).map_err(|e| format!("cannot write the report: {e}"))?;
    let html = report::html::render(&report, &data, &run_dir.join("logs"));
    report::write_atomic(&run_dir.join("report.html"), html.as_bytes())
        .map_err(|e| format!("cannot write report.html: {e}"))?;
    Ok(report)
}
