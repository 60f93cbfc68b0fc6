//! Drift across runs: new, open, acknowledged and resolved drift over a
//! changing sandbox, the chain across failed and targeted runs, the README's
//! history query, and where a run in an object store says its report is.

use crate::common::{assert_drift_ids_unique, demo_job_in, text};
use contract_recon::job::{load_job, Job};
use contract_recon::report::lifecycle::RunKind;
use contract_recon::runner::{run_job, RunOptions, RunOutcome, SandboxEdit};
use contract_recon::sandbox::{StateHandle, DEMO_CHANGE_CONTRACT};
use polars::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// Sets T-1072's vendor id and PO number in the embedded sandbox (its
/// `last_updated_on` 30 s back, so the run's incremental walk reads it).
fn set_t1072(vendor: &'static str, po: &'static str) -> SandboxEdit {
    Arc::new(move |state: &StateHandle| {
        let mut c = state.contract(DEMO_CHANGE_CONTRACT).unwrap();
        let data = &mut c.contract.external_metadata.record_data;
        data.insert("vendor_id".into(), serde_json::json!(vendor));
        data.insert("po_number".into(), serde_json::json!(po));
        let at = chrono::Utc::now() - chrono::Duration::seconds(30);
        c.contract.last_updated_on = Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        state.upsert_contract(c);
    })
}

async fn run(job: &Job, edit: Option<SandboxEdit>) -> RunOutcome {
    let opts = RunOptions {
        edit_sandbox: edit,
        ..RunOptions::default()
    };
    run_job(job, opts).await.unwrap()
}

fn drift_of(outcome: &RunOutcome) -> DataFrame {
    let file =
        std::fs::File::open(Path::new(&outcome.tables["drift"]).join("drift.parquet")).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

fn resolved_of(outcome: &RunOutcome) -> DataFrame {
    let path = Path::new(&outcome.tables["resolved"]).join("resolved.parquet");
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// `(new, open, acknowledged, resolved)` of a run.
fn counts(outcome: &RunOutcome) -> (u64, u64, u64, u64) {
    let l = outcome.summary.lifecycle.as_ref().unwrap();
    (l.new, l.open, l.acknowledged, l.resolved)
}

/// The rows of `df` whose `column` is `value`, as `(kind, contract, field)`.
fn rows_where(df: &DataFrame, column: &str, value: &str) -> Vec<(String, String, String)> {
    let (c, k, id, f) = (
        text(df, column),
        text(df, "drift_kind"),
        text(df, "contract_id"),
        text(df, "field"),
    );
    (0..df.height())
        .filter(|i| c[*i] == value)
        .map(|i| (k[i].clone(), id[i].clone(), f[i].clone()))
        .collect()
}

fn t1072(field: &str) -> (String, String, String) {
    ("field_mismatch".into(), "T-1072".into(), field.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runs_over_a_changing_sandbox_count_and_date_new_open_and_resolved() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();

    let first = run(&job, None).await;
    let total = first.drift_total();
    assert_eq!(counts(&first), (total, 0, 0, 0), "the first run: all new");
    let rows = drift_of(&first);
    assert_drift_ids_unique(&rows);
    assert!(text(&rows, "status").iter().all(|s| s == "new"));
    assert!(first.render_summary().contains(&format!(
        "drift: {total} new, 0 open, 0 acknowledged, 0 resolved (first nightly run)"
    )));

    // T-1072 gets the ERP's vendor id (resolved) and another PO number (new).
    let second = run(&job, Some(set_t1072("V-38520", "12913669"))).await;
    assert_eq!(counts(&second), (1, total - 1, 0, 1));
    let rows = drift_of(&second);
    assert_eq!(rows_where(&rows, "status", "new"), [t1072("po_number")]);
    let resolved = resolved_of(&second);
    assert_eq!(
        rows_where(&resolved, "drift_kind", "field_mismatch"),
        [t1072("vendor_id")]
    );
    assert_eq!(
        text(&resolved, "resolved_at"),
        std::slice::from_ref(&second.summary.started_at)
    );
    assert_eq!(
        text(&resolved, "first_seen_run_id"),
        std::slice::from_ref(&first.summary.run_id)
    );
    assert_eq!(
        text(&resolved, "last_seen_run_id"),
        std::slice::from_ref(&first.summary.run_id)
    );
    assert_eq!(
        text(&resolved, "spotdraft_value"),
        ["V-02340"],
        "its last values"
    );
    let summary = second.render_summary();
    assert!(
        summary.contains(&format!(
            "drift: 1 new, {} open, 0 acknowledged, 1 resolved (since run {})",
            total - 1,
            first.summary.run_id
        )),
        "{summary}"
    );

    // The PO number is put back: the new row is resolved, the others stay open.
    let third = run(&job, Some(set_t1072("V-38520", "12913668"))).await;
    assert_eq!(counts(&third), (0, total - 1, 0, 1));
    let rows = drift_of(&third);
    let first_seen = text(&rows, "first_seen_run_id");
    assert!(
        first_seen.iter().all(|r| *r == first.summary.run_id),
        "{first_seen:?}"
    );
    assert!(text(&rows, "first_seen_at")
        .iter()
        .all(|t| *t == first.summary.started_at));
    let seen = text(&rows, "runs_seen");
    assert!(seen.iter().all(|n| n == "3"), "{seen:?}");
    assert!(text(&rows, "age_days").iter().all(|n| n == "0"));
    let resolved = resolved_of(&third);
    assert_eq!(
        rows_where(&resolved, "drift_kind", "field_mismatch"),
        [t1072("po_number")]
    );
    assert_eq!(
        text(&resolved, "first_seen_run_id"),
        std::slice::from_ref(&second.summary.run_id)
    );
    assert_eq!(text(&resolved, "runs_seen"), ["1"]);

    // The trend has the three runs; the page shows it.
    assert_eq!(third.summary.trend.len(), 3);
    let html = std::fs::read_to_string(third.report_html.as_ref().unwrap()).unwrap();
    assert!(html.contains("last 3 nightly runs") && html.contains("No new drift since run"));

    // The README's history query: per run and status, through Polars' Hive reader.
    let history = history_query(&out);
    for (outcome, (new, open)) in [
        (&first, (total, 0)),
        (&second, (1, total - 1)),
        (&third, (0, total - 1)),
    ] {
        let id = &outcome.summary.run_id;
        assert_eq!(history_rows(&history, id, "new"), new, "{history}");
        assert_eq!(history_rows(&history, id, "open"), open, "{history}");
    }
    let resolved = resolved_query(&out);
    assert_eq!(resolved.height(), 2, "{resolved}");
}

/// The README's history recipe, in Rust: rows per job, run date, run and status.
fn history_query(out: &Path) -> DataFrame {
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_enabled(),
        allow_missing_columns: true,
        ..Default::default()
    };
    let glob = format!("{}/drift/**/*.parquet", out.display());
    LazyFrame::scan_parquet(PlRefPath::new(glob), args)
        .unwrap()
        .group_by([col("job"), col("run_date"), col("run_id"), col("status")])
        .agg([len().alias("rows")])
        .sort(["run_date", "run_id", "status"], Default::default())
        .collect()
        .unwrap()
}

/// The README's resolved recipe: rows resolved per job, run date and run.
fn resolved_query(out: &Path) -> DataFrame {
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_enabled(),
        allow_missing_columns: true,
        ..Default::default()
    };
    let glob = format!("{}/resolved/**/*.parquet", out.display());
    LazyFrame::scan_parquet(PlRefPath::new(glob), args)
        .unwrap()
        .group_by([col("job"), col("run_date"), col("run_id")])
        .agg([len().alias("resolved")])
        .filter(col("resolved").gt(lit(0)))
        .collect()
        .unwrap()
}

fn history_rows(history: &DataFrame, run_id: &str, status: &str) -> u64 {
    let (runs, statuses) = (text(history, "run_id"), text(history, "status"));
    let rows = text(history, "rows");
    (0..history.height())
        .find(|i| runs[*i] == run_id && statuses[*i] == status)
        .map_or(0, |i| rows[i].parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_row_leaves_the_open_count_and_returns_when_it_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();
    let first = run(&job, None).await;
    let total = first.drift_total();
    let rows = drift_of(&first);
    let id = text(&rows, "drift_id")[0].clone();

    let acks = tmp.path().join("acks.toml");
    let today = chrono::Utc::now().date_naive();
    let write_ack = |expires: chrono::NaiveDate| {
        let text = format!(
            "[[ack]]\ndrift_id = \"{id}\"\nreason = \"fixed by hand in the ERP next week\"\nauthor = \"ann@example.com\"\nexpires = {expires}\n"
        );
        std::fs::write(&acks, text).unwrap();
    };
    write_ack(today + chrono::Duration::days(1));
    job.report.acknowledgements = Some(acks.clone());
    let second = run(&job, None).await;
    assert_eq!(counts(&second), (0, total - 1, 1, 0));
    let rows = drift_of(&second);
    let ids = text(&rows, "drift_id");
    let at = ids.iter().position(|i| *i == id).unwrap();
    assert_eq!(text(&rows, "status")[at], "acknowledged");
    assert_eq!(text(&rows, "acknowledged_by")[at], "ann@example.com");
    assert!(second.render_summary().contains("1 acknowledged"));

    write_ack(today - chrono::Duration::days(1));
    let third = run(&job, None).await;
    assert_eq!(counts(&third), (0, total, 0, 0), "expired: open again");

    // A broken file fails the run before any SpotDraft request, naming the file and entry.
    std::fs::write(&acks, "[[ack]]\ndrift_id = \"nope\"\n").unwrap();
    let err = run_job(&job, RunOptions::default()).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("acks.toml") && message.contains("ack[1] (line 1): drift_id"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_targeted_runs_in_between_do_not_break_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let job = load_job(&demo_job_in(tmp.path(), &out)).unwrap();
    let first = run(&job, None).await;
    let total = first.drift_total();

    // A run that fails never publishes: the next one still compares with the first.
    let mut broken = job.clone();
    broken.extract.url = tmp.path().join("missing.csv").display().to_string();
    assert!(run_job(&broken, RunOptions::default()).await.is_err());

    // A targeted run is not compared with.
    let targeted = run_job(
        &job,
        RunOptions {
            kind: RunKind::Targeted,
            edit_sandbox: Some(set_t1072("V-38520", "12913669")),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(counts(&targeted), (1, total - 1, 0, 1));

    let next = run(&job, None).await;
    let l = next.summary.lifecycle.as_ref().unwrap();
    assert_eq!(
        l.previous_run_id.as_deref(),
        Some(first.summary.run_id.as_str())
    );
    assert_eq!(
        counts(&next),
        (1, total - 1, 0, 1),
        "compared with the first run"
    );
    assert_eq!(
        next.summary.trend.len(),
        2,
        "the targeted run is not in the trend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_an_object_store_with_a_prefix_prints_each_segment_once() {
    let tmp = tempfile::tempdir().unwrap();
    let job = load_job(&demo_job_in(tmp.path(), &tmp.path().join("out"))).unwrap();
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let outcome = run_job(
        &job,
        RunOptions {
            output_store: Some(store.clone()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    let s = &outcome.summary;
    let expected = format!(
        "memory://demo/runs/job=demo/run_date={}/run_id={}",
        s.run_date, s.run_id
    );
    assert_eq!(outcome.report_dir, expected);
    for dir in outcome.tables.values().chain([&outcome.report_dir]) {
        let segments: Vec<&str> = dir.trim_start_matches("memory://").split('/').collect();
        assert!(segments.windows(2).all(|w| w[0] != w[1]), "{dir}");
        assert_eq!(
            segments.iter().filter(|s| **s == "demo").count(),
            1,
            "{dir}"
        );
    }
    let printed = outcome.render_summary();
    assert!(
        printed.contains(&format!("reports: {expected}\n")),
        "{printed}"
    );
    // The printed path is where the object is.
    let html = object_store::path::Path::from(format!(
        "{}/report.html",
        expected.trim_start_matches("memory://")
    ));
    assert!(object_store::ObjectStoreExt::head(store.as_ref(), &html)
        .await
        .is_ok());
}
