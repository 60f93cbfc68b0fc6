//! Plan outcomes across runs: a run plans and applies a correction over REST to
//! the sandbox's ERP; the next run, over an extract that holds the corrected
//! values, reports the corrected rows resolved by the job, while a row fixed by
//! editing the contract in SpotDraft is resolved from outside.

use crate::common::{demo_job_against_own_sandbox, repo, rest_sink_to, text};
use contract_recon::job::{ApplyMode, Job};
use contract_recon::runner::{run_job, RunOptions, RunOutcome};
use contract_recon::sandbox::{demo_change, Sandbox};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The demo job over a copy of its extract, against a sandbox the test owns,
/// applying corrections over REST to the sandbox's ERP.
async fn job_and_sandbox(tmp: &Path) -> (Job, Sandbox, std::path::PathBuf) {
    let (mut job, sandbox) = demo_job_against_own_sandbox(tmp).await;
    let extract = tmp.join("erp_extract.csv");
    std::fs::copy(repo().join("fixtures/demo/erp_extract.csv"), &extract).unwrap();
    job.extract.url = extract.display().to_string();
    job.apply.mode = ApplyMode::Apply;
    job.apply.sink = Some(rest_sink_to(&sandbox, 4));
    (job, sandbox, extract)
}

async fn run(job: &Job) -> RunOutcome {
    run_job(job, RunOptions::default()).await.unwrap()
}

fn table(outcome: &RunOutcome, name: &str) -> DataFrame {
    let file =
        std::fs::File::open(Path::new(&outcome.tables[name]).join(format!("{name}.parquet")))
            .unwrap();
    ParquetReader::new(file).finish().unwrap()
}

/// `column` of the rows of `df` whose `drift_id` is `id`.
fn of_row(df: &DataFrame, id: &str, column: &str) -> Vec<String> {
    let (ids, values) = (text(df, "drift_id"), text(df, column));
    ids.iter()
        .zip(values)
        .filter(|(i, _)| *i == id)
        .map(|(_, v)| v)
        .collect()
}

/// Writes `values` (canonical field -> value) into the extract's row of `record`.
fn correct_extract(job: &Job, extract: &Path, record: &str, values: &BTreeMap<String, String>) {
    let content = std::fs::read_to_string(extract).unwrap();
    let mut lines: Vec<String> = content.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let index = |field: &str| {
        let source = &job.extract.columns[field];
        header.iter().position(|h| h == source).unwrap()
    };
    let indexes: Vec<(usize, &String)> = values.iter().map(|(f, v)| (index(f), v)).collect();
    let at = lines
        .iter()
        .position(|l| l.split(',').next() == Some(record))
        .unwrap();
    let mut cells: Vec<String> = lines[at].split(',').map(str::to_string).collect();
    for (i, v) in indexes {
        cells[i] = v.clone();
    }
    lines[at] = cells.join(",");
    std::fs::write(extract, lines.join("\n") + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_job_corrected_is_resolved_by_the_job_and_one_fixed_in_spotdraft_from_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let (job, sandbox, extract) = job_and_sandbox(tmp.path()).await;

    // Run 1 plans and applies: its rows name their corrections, never sent yet.
    let first = run(&job).await;
    let applied = first.summary.apply.clone().unwrap();
    assert_eq!(applied.failed, 0, "{applied:?}");
    let drift = table(&first, "drift");
    let outcomes = text(&drift, "correction_outcome");
    assert!(outcomes.iter().all(|o| o == "planned"), "{outcomes:?}");
    assert!(text(&drift, "correction_action")
        .iter()
        .all(|a| !a.is_empty()));

    // The correction followed: an update of a record whose extract row is plain.
    let plan = table(&first, "plan");
    let (kinds, records, values, keys) = (
        text(&plan, "action"),
        text(&plan, "erp_record_id"),
        text(&plan, "values"),
        text(&plan, "action_id"),
    );
    let content = std::fs::read_to_string(&extract).unwrap();
    let i = (0..plan.height())
        .find(|i| {
            kinds[*i] == "update_erp_fields"
                && !values[*i].contains("spotdraft_contract_id")
                && content
                    .lines()
                    .any(|l| l.starts_with(&format!("{},", records[*i])) && !l.contains('"'))
        })
        .expect("an update of a plain extract row");
    let (record, key) = (records[i].clone(), keys[i].clone());
    let ids: Vec<String> = (0..drift.height())
        .filter(|r| text(&drift, "correction_id")[*r] == key)
        .map(|r| text(&drift, "drift_id")[r].clone())
        .collect();
    assert!(!ids.is_empty(), "the update covers drift rows");
    for id in &ids {
        assert_eq!(
            of_row(&drift, id, "correction_action"),
            ["update_erp_fields"]
        );
    }
    // The row fixed by hand: T-1072's vendor_id mismatch (owner none: review).
    let (contracts, fields) = (text(&drift, "contract_id"), text(&drift, "field"));
    let by_hand = (0..drift.height())
        .find(|r| contracts[*r] == "T-1072" && fields[*r] == "vendor_id")
        .map(|r| text(&drift, "drift_id")[r].clone())
        .expect("T-1072's vendor_id mismatch");
    assert_eq!(of_row(&drift, &by_hand, "correction_action"), ["review"]);

    // Between the runs: the next extract holds the corrected values, and a
    // person fixes T-1072 in SpotDraft.
    let written: BTreeMap<String, String> = serde_json::from_str(&values[i]).unwrap();
    correct_extract(&job, &extract, &record, &written);
    demo_change(&sandbox.state());

    let second = run(&job).await;
    let resolved = table(&second, "resolved");
    for id in &ids {
        assert_eq!(of_row(&resolved, id, "resolved_by"), ["job"], "{id}");
        assert_eq!(
            of_row(&resolved, id, "resolved_by_correction_id"),
            std::slice::from_ref(&key)
        );
    }
    assert_eq!(of_row(&resolved, &by_hand, "resolved_by"), ["outside"]);
    assert_eq!(
        of_row(&resolved, &by_hand, "resolved_by_correction_id"),
        [""]
    );
    let lifecycle = second.summary.lifecycle.clone().unwrap();
    assert_eq!(lifecycle.resolved_by_job, ids.len() as u64);
    assert_eq!(lifecycle.resolved, ids.len() as u64 + 1, "{lifecycle:?}");
    assert!(second
        .render_summary()
        .contains(&format!("), {} of them fixed by the job\n", ids.len())));

    // Rows still open whose update was applied (the extract does not show it
    // yet) carry the applied outcome of their earlier key.
    let drift = table(&second, "drift");
    let (actions, outcomes, at) = (
        text(&drift, "correction_action"),
        text(&drift, "correction_outcome"),
        text(&drift, "correction_at"),
    );
    let status = text(&drift, "status");
    let applied_open = (0..drift.height())
        .filter(|r| {
            status[*r] == "open" && actions[*r] == "update_erp_fields" && outcomes[*r] == "applied"
        })
        .count();
    assert!(applied_open > 0, "{outcomes:?}");
    assert!((0..drift.height()).all(|r| (outcomes[r] == "planned") == at[r].is_empty()));

    let html = std::fs::read_to_string(second.report_html.as_ref().unwrap()).unwrap();
    assert!(html.contains("resolved: fixed by the job"));
    assert!(html.contains("<th>Correction</th>"));
    sandbox.shutdown().await;
}
