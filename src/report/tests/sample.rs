//! Sample reports on disk, for looking at them with a browser and other readers.

use super::*;

/// Three sample runs on a local folder (small, 10,000 varied drift rows, and
/// clean), read back as another reader would. With `REPORT_SAMPLE_DIR` set
/// they are kept there, for looking at `report.html` in a browser:
/// `REPORT_SAMPLE_DIR=/tmp/x cargo test --lib sample_reports`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_reports_of_every_size_are_complete_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir =
        std::env::var("REPORT_SAMPLE_DIR").unwrap_or_else(|_| tmp.path().display().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir).unwrap());
    write(
        store.clone(),
        &run("r-a", "2025-03-01", "2025-03-01T06:05:00Z"),
        &drift_frame("r-a"),
    )
    .await
    .unwrap();
    let n = 10_000;
    let kinds = crate::reconcile::spec::kinds::ALL;
    let pick = |i: usize, options: &[&str]| options[(i * 7 + i / 3) % options.len()].to_string();
    let kind: Vec<String> = (0..n)
        .map(|i| kinds[(i * 13 + i / 5) % kinds.len()].to_string())
        .collect();
    let field: Vec<Option<String>> = (0..n)
        .map(|i| {
            (kind[i] == "field_mismatch").then(|| {
                pick(
                    i,
                    &["amount", "currency", "status", "expiry_date", "po_number"],
                )
            })
        })
        .collect();
    let big = df! {
        "run_id" => vec!["r-b"; n],
        "job" => vec!["acme-vendors"; n],
        "detected_at" => vec!["2025-03-02T06:01:02Z"; n],
        "drift_kind" => kind.clone(),
        "severity" => (0..n).map(|i| pick(i, &["low", "medium", "high", "medium"])).collect::<Vec<_>>(),
        "contract_id" => (0..n).map(|i| format!("T-{}", 1000 + i)).collect::<Vec<_>>(),
        "erp_record_id" => (0..n).map(|i| (i % 9 != 0).then(|| format!("ERP-{:06}", i))).collect::<Vec<_>>(),
        "legal_entity_id" => (0..n).map(|i| (i % 17 != 0).then(|| format!("LE-{:02}", (i * 31) % 23))).collect::<Vec<_>>(),
        "vendor_id" => (0..n).map(|i| Some(format!("V{}", i % 400))).collect::<Vec<_>>(),
        "po_number" => (0..n).map(|i| (i % 4 != 0).then(|| format!("PO-{}", 50000 + i))).collect::<Vec<_>>(),
        "field" => field.clone(),
        "spotdraft_value" => field.iter().enumerate().map(|(i, f)| f.as_ref().map(|_| format!("{}.00", 100 + i))).collect::<Vec<_>>(),
        "erp_value" => field.iter().enumerate().map(|(i, f)| f.as_ref().map(|_| format!("{}.50", 100 + i))).collect::<Vec<_>>(),
        "proposed_action" => kind.iter().map(|k| if k == "field_mismatch" { "update_erp" } else { "review" }).collect::<Vec<_>>(),
    }
    .unwrap();
    let info = run("r-b", "2025-03-02", "2025-03-02T06:05:00Z");
    let loc = write(store.clone(), &info, &big).await.unwrap();
    let clean = run("r-c", "2025-03-03", "2025-03-03T06:05:00Z");
    let summary = Summary::from_drift(&clean, &DataFrame::empty(), inputs()).unwrap();
    let formats = ReportFormats::default();
    write_reports(
        store,
        &Path::from("out"),
        &clean,
        &DataFrame::empty(),
        &DataFrame::empty(),
        &summary,
        &formats,
    )
    .await
    .unwrap();
    // The 10,000-row run reads back whole, with its page.
    let run_dir = std::path::Path::new(&dir).join(loc.dir.as_ref());
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("r-b"), "the page names its run");
    let drift_dir = std::path::Path::new(&dir)
        .join("out/drift/job=acme-vendors/run_date=2025-03-02/run_id=r-b");
    let file = std::fs::File::open(drift_dir.join("drift.parquet")).unwrap();
    assert_eq!(ParquetReader::new(file).finish().unwrap().height(), n);
    assert!(drift_dir.join("_SUCCESS").exists());
    println!("{}", run_dir.display());
}
