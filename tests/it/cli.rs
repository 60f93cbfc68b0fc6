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
}

#[test]
fn unknown_subcommand_is_usage_error() {
    assert_eq!(cli(&["frobnicate"]).status.code(), Some(2));
}
