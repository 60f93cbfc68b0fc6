//! Report stage tests: real writes into an in-memory store or a temp folder, read back.

use super::*;
use crate::test_store::FaultyStore;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use polars::prelude::*;
use std::sync::Arc;

mod csv_safety;
mod lifecycle_html;
mod publishing;
mod sample;

fn run(run_id: &str, date: &str, finished_at: &str) -> RunInfo {
    RunInfo {
        job: "acme-vendors".into(),
        run_id: run_id.into(),
        run_date: date.parse().unwrap(),
        started_at: "2025-03-01T06:00:00Z".into(),
        finished_at: finished_at.into(),
    }
}

/// Five drift rows over three kinds, two legal entities (one null) and two fields.
fn drift_frame(run_id: &str) -> DataFrame {
    let n = 5;
    let same = |v: &str| vec![Some(v.to_string()); n];
    df! {
        "run_id" => same(run_id),
        "job" => same("acme-vendors"),
        "detected_at" => same("2025-03-01T06:01:02Z"),
        "drift_kind" => ["field_mismatch", "field_mismatch", "missing_in_erp", "field_mismatch", "unlinked_contract"],
        "severity" => ["low", "high", "high", "medium", "medium"],
        "contract_id" => [Some("T-1"), Some("T-2"), Some("T-3"), Some("T-4"), Some("T-5")],
        "erp_record_id" => [Some("ERP-1"), Some("ERP-2"), Some("ERP-9"), Some("ERP-4"), None],
        "legal_entity_id" => [Some("LE-US"), Some("LE-US"), Some("LE-DE"), None, Some("LE-DE")],
        "vendor_id" => [Some("V1"), Some("V2"), None, Some("V4"), Some("V5")],
        "po_number" => [Some("PO-1"), None, Some("PO-3"), Some("PO-4"), None],
        "field" => [Some("amount"), Some("status"), None, Some("amount"), None],
        "spotdraft_value" => [Some("100.00"), Some("<script>alert('x')</script>"), None, Some("5"), None],
        "erp_value" => [Some("100.50"), Some("ACTIVE"), None, Some("6"), None],
        "proposed_action" => ["update_erp", "update_erp", "create_erp_record", "update_erp", "link_contract"],
        "drift_id" => ["00000000000000a1", "00000000000000a2", "00000000000000a3", "00000000000000a4", "00000000000000a5"],
    }
    .unwrap()
}

fn rejects_frame() -> DataFrame {
    df! {
        "row" => [3u64, 7],
        "reason" => ["amount: not a number `12,3.4`", "erp_record_id: empty"],
        "erp_record_id" => [Some("ERP-77"), None],
    }
    .unwrap()
}

fn inputs() -> InputCounts {
    InputCounts {
        contracts: 10,
        contracts_in_scope: 8,
        erp_rows_read: 12,
        erp_rows_valid: 10,
        erp_rows_rejected: 2,
    }
}

fn map(pairs: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[test]
fn summary_counts_by_kind_severity_entity_and_field() {
    let info = run("r1", "2025-03-01", "2025-03-01T06:05:00Z");
    let s = Summary::from_drift(&info, &drift_frame("r1"), inputs()).unwrap();
    assert_eq!(s.drift_total, 5);
    assert_eq!(
        s.by_kind,
        map(&[
            ("duplicate_link", 0),
            ("field_mismatch", 3),
            ("link_conflict", 0),
            ("missing_document", 0),
            ("missing_in_erp", 1),
            ("missing_in_spotdraft", 0),
            ("orphan_erp_record", 0),
            ("unlinked_contract", 1),
            ("unusable_erp_value", 0),
        ])
    );
    assert_eq!(
        s.by_severity,
        map(&[("high", 2), ("low", 1), ("medium", 2)])
    );
    assert_eq!(
        s.by_legal_entity,
        map(&[("(none)", 1), ("LE-DE", 2), ("LE-US", 2)])
    );
    assert_eq!(s.by_field, map(&[("amount", 2), ("status", 1)]));
    assert_eq!(s.inputs, inputs());
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), s);
}

#[test]
fn summary_counts_fields_of_field_mismatches_only() {
    let info = run("r1", "2025-03-01", "2025-03-01T06:05:00Z");
    let mut drift = drift_frame("r1");
    let kinds: Vec<&str> = ["unusable_erp_value"; 5].to_vec();
    drift
        .with_column(Column::new("drift_kind".into(), kinds))
        .unwrap();
    let s = Summary::from_drift(&info, &drift, inputs()).unwrap();
    assert_eq!(s.by_kind["unusable_erp_value"], 5);
    assert_eq!(s.by_kind.len(), crate::reconcile::spec::kinds::ALL.len());
    assert!(s.by_field.is_empty(), "{:?}", s.by_field);
}

#[test]
fn summary_rejects_a_frame_missing_a_column() {
    let info = run("r1", "2025-03-01", "2025-03-01T06:05:00Z");
    let frame = drift_frame("r1").drop("severity").unwrap();
    let err = Summary::from_drift(&info, &frame, inputs()).unwrap_err();
    assert!(err.to_string().contains("`severity`"), "{err}");
}

async fn write(
    store: Arc<dyn ObjectStore>,
    info: &RunInfo,
    drift: &DataFrame,
) -> Result<ReportLocation, ReportError> {
    let summary = Summary::from_drift(info, drift, inputs()).unwrap();
    let prefix = Path::from("out");
    write_reports(
        store,
        &prefix,
        info,
        drift,
        &rejects_frame(),
        &summary,
        &ReportFormats::default(),
    )
    .await
}

async fn get_bytes(store: &dyn ObjectStore, path: &str) -> Vec<u8> {
    store
        .get(&Path::parse(path).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn list(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let metas: Vec<ObjectMeta> = store
        .list(Some(&Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut names: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
    names.sort();
    names
}

async fn latest_run_id(store: &Arc<dyn ObjectStore>) -> Option<String> {
    read_latest(store.clone(), &Path::from("out"), "acme-vendors")
        .await
        .unwrap()
        .map(|l| l.run_id)
}

const JOB: &str = "acme-vendors";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_csv_read_back_equal_to_input() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let info = run("r1", "2025-03-01", "2025-03-01T06:05:00Z");
    let drift = drift_frame("r1");
    let loc = write(store.clone(), &info, &drift).await.unwrap();
    let dir = "out/drift/job=acme-vendors/run_date=2025-03-01/run_id=r1";
    assert_eq!(loc.tables["drift"].as_ref(), dir);

    let parquet = get_bytes(store.as_ref(), &format!("{dir}/drift.parquet")).await;
    let back = ParquetReader::new(std::io::Cursor::new(parquet))
        .finish()
        .unwrap();
    let drift_in_file = drift.clone().drop_many(PARQUET_DROPPED_COLUMNS);
    // The lifecycle columns the frame lacks are written null.
    let back = back.select(drift_in_file.get_column_names_owned()).unwrap();
    assert!(
        back.equals_missing(&drift_in_file),
        "parquet:\n{back}\ninput:\n{drift_in_file}"
    );

    let csv = get_bytes(store.as_ref(), &format!("{dir}/drift.csv")).await;
    let back = read_csv_as_strings(csv)
        .select(drift.get_column_names_owned())
        .unwrap();
    assert!(back.equals_missing(&drift), "csv:\n{back}\ninput:\n{drift}");

    let rejects_dir = "out/rejects/job=acme-vendors/run_date=2025-03-01/run_id=r1";
    let rejects = get_bytes(store.as_ref(), &format!("{rejects_dir}/rejects.csv")).await;
    let text = String::from_utf8(rejects).unwrap();
    assert!(text.starts_with("row,reason,erp_record_id\n3,"), "{text}");
    assert!(text.contains("\"amount: not a number `12,3.4`\""), "{text}");
    let parquet = get_bytes(store.as_ref(), &format!("{rejects_dir}/rejects.parquet")).await;
    let back = ParquetReader::new(std::io::Cursor::new(parquet))
        .finish()
        .unwrap();
    assert!(back.equals_missing(&rejects_frame()), "{back}");
}

fn read_csv_as_strings(bytes: Vec<u8>) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_reads_as_hive_dataset_with_run_id_and_date() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(tmp.path()).unwrap());
    write(
        store.clone(),
        &run("r-a", "2025-03-01", "2025-03-01T06:05:00Z"),
        &drift_frame("r-a"),
    )
    .await
    .unwrap();
    let three = drift_frame("r-b").head(Some(3));
    write(
        store.clone(),
        &run("r-b", "2025-03-02", "2025-03-02T06:05:00Z"),
        &three,
    )
    .await
    .unwrap();

    let glob = format!("{}/out/drift/**/*.parquet", tmp.path().display());
    let all = tokio::task::spawn_blocking(move || {
        let args = ScanArgsParquet {
            hive_options: HiveOptions::new_enabled(),
            ..Default::default()
        };
        LazyFrame::scan_parquet(PlRefPath::new(glob), args)
            .unwrap()
            .sort(["run_id", "contract_id"], Default::default())
            .collect()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(all.column("run_date").unwrap().dtype(), &DataType::Date);
    let dates = all
        .column("run_date")
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    let dates: Vec<Option<&str>> = dates.str().unwrap().iter().collect();
    let expected_dates = [vec![Some("2025-03-01"); 5], vec![Some("2025-03-02"); 3]].concat();
    assert_eq!(dates, expected_dates);
    // Every drift column, run_id included (from the path), comes back as written.
    let names: Vec<PlSmallStr> = DRIFT_COLUMNS.iter().map(|c| (*c).into()).collect();
    let rows = all.select(names).unwrap();
    let mut expected = drift_frame("r-a");
    expected.vstack_mut(&three).unwrap();
    assert!(
        rows.equals_missing(&expected),
        "got:\n{rows}\nexpected:\n{expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_escapes_values_and_colors_by_severity() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let info = run("r<1>", "2025-03-01", "2025-03-01T06:05:00Z");
    let loc = write(store.clone(), &info, &drift_frame("r1"))
        .await
        .unwrap();
    let dir = loc.dir.to_string();
    let html =
        String::from_utf8(get_bytes(store.as_ref(), &format!("{dir}/report.html")).await).unwrap();
    assert!(!html.contains("<script"), "unescaped script tag");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("r&lt;1&gt;"));
    assert!(html.contains("<tr class=\"high\">") && html.contains("<tr class=\"low\">"));
    assert!(html.contains("<svg") && !html.contains("src=") && !html.contains("href="));
    // High severity rows come first, and within them the kinds in report order.
    let first_high = html.find("<tr class=\"high\">").unwrap();
    let first_medium = html.find("<tr class=\"medium\">").unwrap();
    let first_low = html.find("<tr class=\"low\">").unwrap();
    assert!(first_high < first_medium && first_medium < first_low);
    assert!(html.contains("amount: not a number `12,3.4`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_drift_writes_headers_and_says_clean() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let info = run("r1", "2025-03-01", "2025-03-01T06:05:00Z");
    let summary = Summary::from_drift(&info, &DataFrame::empty(), InputCounts::default()).unwrap();
    assert_eq!(summary.drift_total, 0);
    assert!(summary.by_kind.values().all(|n| *n == 0));
    let prefix = Path::from("out");
    let formats = ReportFormats::default();
    let loc = write_reports(
        store.clone(),
        &prefix,
        &info,
        &DataFrame::empty(),
        &DataFrame::empty(),
        &summary,
        &formats,
    )
    .await
    .unwrap();
    let dir = loc.tables["drift"].to_string();
    let csv =
        String::from_utf8(get_bytes(store.as_ref(), &format!("{dir}/drift.csv")).await).unwrap();
    let header: Vec<&str> = DRIFT_COLUMNS
        .iter()
        .copied()
        .chain(lifecycle::LIFECYCLE_COLUMNS.iter().map(|(n, _)| *n))
        .collect();
    assert_eq!(csv.trim_end(), header.join(","));
    let rejects_dir = loc.tables["rejects"].to_string();
    let rejects =
        String::from_utf8(get_bytes(store.as_ref(), &format!("{rejects_dir}/rejects.csv")).await)
            .unwrap();
    assert_eq!(rejects.trim_end(), "row,reason,erp_record_id");
    let parquet = get_bytes(store.as_ref(), &format!("{dir}/drift.parquet")).await;
    let back = ParquetReader::new(std::io::Cursor::new(parquet))
        .finish()
        .unwrap();
    assert_eq!(back.height(), 0);
    let names: Vec<String> = back
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, header[2..]);
    let html =
        String::from_utf8(get_bytes(store.as_ref(), &format!("{}/report.html", loc.dir)).await)
            .unwrap();
    assert!(html.contains("No drift."));
    assert!(html.contains("No ERP rows were rejected"));
}

#[test]
fn html_for_ten_thousand_rows_stays_small() {
    let big = drift_frame("r1").slice(0, 5);
    let mut frames = Vec::new();
    for _ in 0..2000 {
        frames.push(big.clone().lazy());
    }
    let drift = concat(frames, UnionArgs::default())
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(drift.height(), 10_000);
    let info = run("r1", "2025-03-01", "2025-03-01T06:05:00Z");
    let summary = Summary::from_drift(&info, &drift, inputs()).unwrap();
    let html = render_html(&summary, &drift, &rejects_frame()).unwrap();
    assert!(html.len() < 300 * 1024, "{} bytes", html.len());
    assert_eq!(html.matches("<tr class=").count(), 200);
    assert!(html.contains("Showing 200 of 10,000 rows"));
}
