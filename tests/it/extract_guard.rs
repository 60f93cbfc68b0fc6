//! The guard against a broken ERP export (`[erp.extract] min_rows`,
//! `max_row_drop`, `max_age_hours`, `run --accept-extract`): the run fails
//! before any report or plan, naming the file and both counts or ages.

use crate::common::{cli, demo_job_in, repo};
use contract_recon::erp::extract::GuardError;
use contract_recon::job::load_job;
use contract_recon::runner::{run_job, RunOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const HEADER: &str = "RECORD_ID,SD_CONTRACT_ID,VENDOR_NO,PO_NUMBER,LEGAL_ENTITY,STATUS,AMOUNT,CURRENCY,EFFECTIVE_DATE,EXPIRY_DATE,DOC_SHA256";

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn guard_error(e: &anyhow::Error) -> GuardError {
    e.downcast_ref::<GuardError>()
        .unwrap_or_else(|| panic!("not a guard error: {e:#}"))
        .clone()
}

/// The demo extract's header and its first `n` data rows, written to `dir/name`.
fn demo_rows(dir: &Path, name: &str, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("fixtures/demo/erp_extract.csv")).unwrap();
    let kept: Vec<&str> = text.lines().take(n + 1).collect();
    let path = dir.join(name);
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_only_extract_fails_before_any_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();
    let path = tmp.path().join("header_only.csv");
    std::fs::write(&path, format!("{HEADER}\n")).unwrap();
    job.extract.url = path.display().to_string();

    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    assert_eq!(
        guard_error(&err),
        GuardError::TooFewRows {
            url: path.display().to_string(),
            rows: 0,
            min_rows: 1
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("header_only.csv has 0 data rows, fewer than [erp.extract] min_rows = 1"),
        "{text}"
    );
    let written = files_under(&out);
    for report in [
        "drift",
        "summary.json",
        "rejects",
        "plan",
        "latest.json",
        "_SUCCESS",
    ] {
        assert!(
            !written.iter().any(|f| f.contains(report)),
            "{report} written: {written:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_beyond_the_share_fails_naming_both_counts_and_the_flag_overrides_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();
    let first = run_job(&job, RunOptions::default()).await.unwrap();
    let before = first.summary.inputs.erp_rows_valid;
    assert!(before > 20, "{before}");

    // 10 rows of the demo's first 10, all valid: far more than half gone.
    job.extract.url = demo_rows(tmp.path(), "cut.csv", 10).display().to_string();
    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    match guard_error(&err) {
        GuardError::RowDrop {
            valid,
            previous,
            previous_run,
            max_row_drop,
            ..
        } => {
            assert_eq!(valid, 10);
            assert_eq!(previous, before);
            assert_eq!(previous_run, first.summary.run_id);
            assert_eq!(max_row_drop, 0.5);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("cut.csv has 10 valid rows"), "{text}");
    assert!(
        text.contains(&format!(
            "{before} in the last complete nightly run {}",
            first.summary.run_id
        )),
        "{text}"
    );

    let accepted = run_job(
        &job,
        RunOptions {
            accept_extract: true,
            ..RunOptions::default()
        },
    )
    .await;
    let accepted = accepted.unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(accepted.summary.inputs.erp_rows_valid, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_extract_fails_naming_its_age() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();
    let path = demo_rows(tmp.path(), "old.csv", 5);
    let three_days = SystemTime::now() - Duration::from_secs(72 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(three_days)
        .unwrap();
    job.extract.url = path.display().to_string();
    job.extract.guard.max_age = Some(Duration::from_secs(36 * 3600));

    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    match guard_error(&err) {
        GuardError::TooOld {
            age_hours,
            max_age_hours,
            ..
        } => {
            assert!((71.9..72.2).contains(&age_hours), "{age_hours}");
            assert_eq!(max_age_hours, 36.0);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("old.csv was last modified at "), "{text}");
    assert!(
        text.contains(", 72.0 hours ago, older than [erp.extract] max_age_hours = 36"),
        "{text}"
    );
    assert!(!files_under(&out).iter().any(|f| f.contains("summary.json")));
}

#[test]
fn the_cli_exits_5_naming_the_file_and_accept_extract_is_a_run_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = demo_job_in(tmp.path(), &out);
    let empty = tmp.path().join("export.csv");
    std::fs::write(&empty, format!("{HEADER}\n")).unwrap();
    let text = std::fs::read_to_string(&job).unwrap();
    let demo_extract = format!("{}/fixtures/demo/erp_extract.csv", repo().display());
    std::fs::write(
        &job,
        text.replace(&demo_extract, &empty.display().to_string()),
    )
    .unwrap();

    let run = cli(&["run", job.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("export.csv has 0 data rows, fewer than [erp.extract] min_rows = 1"),
        "{stderr}"
    );

    let help = cli(&["run", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--accept-extract"));
}

#[test]
fn guard_keys_out_of_range_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let job = demo_job_in(tmp.path(), &tmp.path().join("out"));
    let text = std::fs::read_to_string(&job).unwrap();
    let bad = text.replace(
        "format = \"csv\"\n",
        "format = \"csv\"\nmin_rows = 0\nmax_row_drop = 1.5\nmax_age_hours = -1\n",
    );
    assert_ne!(bad, text);
    std::fs::write(&job, bad).unwrap();
    let problems = load_job(&job).unwrap_err().to_string();
    assert!(
        problems.contains("erp.extract.max_row_drop: 1.5 is not a share between 0 and 1"),
        "{problems}"
    );
    assert!(
        problems.contains("erp.extract.max_age_hours: -1 is not a positive number of hours"),
        "{problems}"
    );
    assert!(!problems.contains("min_rows"), "{problems}");
}
