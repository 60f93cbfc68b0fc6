//! `[retention]` at the end of a real run: an expired run of the job is
//! removed, the run just made and the job's state stay.

use crate::common::demo_job_against_own_sandbox;
use contract_recon::job::RetentionSettings;
use contract_recon::runner::{run_job, RunOptions};
use std::path::Path;

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_removes_the_expired_runs_of_its_job() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut job, _sandbox) = demo_job_against_own_sandbox(tmp.path()).await;
    job.retention = Some(RetentionSettings {
        keep_days: 30,
        history_keep_days: 30,
        journal_keep_days: None,
    });
    let out = tmp.path().join("out");
    let old = "run-20250101-023000-0ld0ld00";
    let old_dir = format!("drift/job=demo/run_date=2025-01-01/run_id={old}");
    let old_record = format!("_history/demo/{old}.json");
    for (file, text) in [
        (format!("{old_dir}/drift.parquet"), "PAR1"),
        (format!("{old_dir}/_SUCCESS"), "{}"),
        (old_record.clone(), "{}"),
    ] {
        std::fs::create_dir_all(out.join(&file).parent().unwrap()).unwrap();
        std::fs::write(out.join(&file), text).unwrap();
    }

    let done = run_job(&job, RunOptions::default()).await.unwrap();
    let files = files_under(&out);
    assert!(!files.iter().any(|f| f.contains(old)), "{files:#?}");
    assert!(
        !out.join("drift/job=demo/run_date=2025-01-01").exists(),
        "the emptied folders go too"
    );
    let run_id = &done.summary.run_id;
    for kept in [
        format!("_history/demo/{run_id}.json"),
        "runs/job=demo/latest.json".to_string(),
        "state/demo.json".to_string(),
        "snapshots/demo/snapshot.parquet".to_string(),
    ] {
        assert!(files.contains(&kept), "{kept} in {files:#?}");
    }
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("drift/job=demo/") && f.contains(run_id.as_str())),
        "{files:#?}"
    );
}
