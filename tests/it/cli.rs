//! The command line as a person uses it: exit codes and messages.

use crate::common::{cli, demo_job_in, repo};

#[test]
fn validate_accepts_the_demo_job() {
    let demo = repo().join("jobs/demo.toml");
    let out = cli(&["validate", demo.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (job \"demo\")"));
}

#[test]
fn validate_reports_each_problem_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let good = demo_job_in(tmp.path(), &tmp.path().join("out"));
    let text = std::fs::read_to_string(&good).unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("page_size = 100", "page_size = 0")
            .replace("\"0 30 2 * * *\"", "\"nightly\""),
    )
    .unwrap();
    let out = cli(&["validate", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with(bad.to_str().unwrap()))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(": job.schedule: unparsable cron")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(": spotdraft.page_size: 0 is out of range")),
        "{stdout}"
    );
}

#[test]
fn validate_names_an_unset_secret_variable() {
    let prod = repo().join("jobs/us-nightly.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["validate", prod.to_str().unwrap()])
        .env_remove("SPOTDRAFT_CLIENT_ID")
        .env("SPOTDRAFT_CLIENT_SECRET", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "spotdraft.client_id_env: environment variable SPOTDRAFT_CLIENT_ID is not set"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("client_secret_env"), "{stdout}");
}

#[test]
fn run_with_fail_on_drift_exits_3_and_prints_the_report_path() {
    let tmp = tempfile::tempdir().unwrap();
    let job = demo_job_in(tmp.path(), &tmp.path().join("out"));
    let out = cli(&["run", job.to_str().unwrap(), "--fail-on-drift"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = stdout
        .lines()
        .find_map(|l| l.strip_prefix("open:"))
        .expect("report path printed")
        .trim();
    assert!(std::path::Path::new(html).is_file(), "{html}");

    // The same drift again: nothing new, so `--fail-on-drift=new` passes while
    // plain `--fail-on-drift` still fails on it.
    let again = cli(&["run", job.to_str().unwrap(), "--fail-on-drift=new"]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("drift: 0 new, "), "{stdout}");
    // A value needs `=`, so the job path after the flag is not taken for one.
    let plain = cli(&["run", "--fail-on-drift", job.to_str().unwrap()]);
    assert_eq!(plain.status.code(), Some(3));
}

#[test]
fn unknown_subcommand_is_usage_error() {
    assert_eq!(cli(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_missing_extract_column_fails_the_run_naming_file_column_and_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let job = demo_job_in(tmp.path(), &tmp.path().join("out"));
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("po_number = \"PO_NUMBER\"", "po_number = \"PO_NO\"");
    std::fs::write(&job, text).unwrap();
    let out = cli(&["run", job.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("erp_extract.csv"), "{stderr}");
    assert!(stderr.contains("PO_NO"), "{stderr}");
    assert!(
        stderr.contains("PO_NUMBER"),
        "the columns that exist are listed: {stderr}"
    );
    assert!(
        !tmp.path().join("out/runs").exists() && !tmp.path().join("out/drift").exists(),
        "no report for a failed run"
    );
    assert!(
        !tmp.path().join("out/state").exists(),
        "the extract is checked before SpotDraft is asked anything"
    );
}

#[test]
fn demo_runs_the_shipped_job_and_prints_the_report_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_contract-recon"))
        .args(["demo", "--output", tmp.path().to_str().unwrap()])
        .current_dir(repo())
        .env("CONTRACT_RECON_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("job demo run run-"), "{stdout}");
    assert!(
        stdout.contains("ingest (full): 300 contracts fetched"),
        "{stdout}"
    );
    let html = stdout
        .lines()
        .find_map(|l| l.strip_prefix("open:"))
        .expect("report path printed")
        .trim();
    assert!(
        html.starts_with(tmp.path().canonicalize().unwrap().to_str().unwrap()),
        "{html}"
    );
    assert!(std::fs::read_to_string(html)
        .unwrap()
        .contains("Drift report: demo"));
}

#[test]
fn validate_online_checks_the_credentials_and_names_a_compare_whose_metadata_field_does_not_exist()
{
    let tmp = tempfile::tempdir().unwrap();
    let good = demo_job_in(tmp.path(), &tmp.path().join("out"));
    let out = cli(&["validate", "--online", good.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ok online (job \"demo\")"), "{stdout}");

    let text = std::fs::read_to_string(&good).unwrap().replace(
        "\"key_pointers.currency\"",
        "\"key_pointers.currency_code\"",
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, text).unwrap();
    // Offline, the name is well formed.
    assert!(cli(&["validate", bad.to_str().unwrap()]).status.success());
    let out = cli(&["validate", "--online", bad.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    // currency is the 5th [[compare]] of the demo job.
    let expected = format!(
        "{}: compare[4].spotdraft: metadata field \"currency_code\" does not exist",
        bad.display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}
