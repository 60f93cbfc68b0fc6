//! Integration tests: reconcile (ERP extract loading through real object stores).

use crate::common::{drift_keys, expected_drift, read_csv_text, text};
use contract_recon::erp::extract::{
    load_extract, Extract, ExtractError, ExtractFormat, ExtractSource,
};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const CSV: &str = "RECORD_ID,SD_CONTRACT_ID,PO_NUMBER,AMOUNT,EFFECTIVE_DATE,EXPIRY_DATE,IGNORED\n\
ERP-1,T-1,00123,\"1,234.50\",2026-01-01,2026-12-31T00:00:00Z,x\n\
,T-2,7,10,2026-01-01,,x\n\
ERP-3,,,12.5,2026-13-45,,x\n\
ERP-4,T-4,,\"12,34\",2026-02-01,,x\n\
ERP-5,T-5,  ,-3,2026-02-01,,x\n";

fn mapping() -> BTreeMap<String, String> {
    [
        ("erp_record_id", "RECORD_ID"),
        ("spotdraft_contract_id", "SD_CONTRACT_ID"),
        ("po_number", "PO_NUMBER"),
        ("amount", "AMOUNT"),
        ("effective_date", "EFFECTIVE_DATE"),
        ("expiry_date", "EXPIRY_DATE"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

async fn load(
    store: Arc<dyn ObjectStore>,
    path: &str,
    format: ExtractFormat,
    columns: &BTreeMap<String, String>,
) -> Result<Extract, ExtractError> {
    let url = format!("test://{path}");
    load_extract(ExtractSource {
        store,
        path: Path::from(path),
        display_url: &url,
        format,
        columns,
    })
    .await
}

fn strings(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(String::from))
        .collect()
}

fn u64s(df: &DataFrame, name: &str) -> Vec<u64> {
    df.column(name)
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn bools(df: &DataFrame, name: &str) -> Vec<bool> {
    df.column(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .bool()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

fn assert_csv_extract(x: &Extract) {
    assert_eq!(x.rows_read, 5);
    assert_eq!(
        u64s(&x.records, "_row"),
        [1, 3, 4, 5],
        "rows with an unusable value are records too; only the id-less row is not"
    );
    assert_eq!(
        strings(&x.records, "erp_record_id"),
        [s("ERP-1"), s("ERP-3"), s("ERP-4"), s("ERP-5")]
    );
    assert_eq!(
        strings(&x.records, "po_number"),
        [s("00123"), None, None, None],
        "text kept verbatim, blank is null"
    );
    assert_eq!(
        strings(&x.records, "amount"),
        [s("1,234.50"), s("12.5"), s("12,34"), s("-3")]
    );
    assert_eq!(
        strings(&x.records, "effective_date")[1],
        s("2026-13-45"),
        "the unusable value is kept raw"
    );
    assert_eq!(
        bools(&x.records, "_unusable_effective_date"),
        [false, true, false, false]
    );
    assert_eq!(
        bools(&x.records, "_unusable_amount"),
        [false, false, true, false]
    );
    assert_eq!(
        bools(&x.records, "_unusable_expiry_date"),
        [false, false, false, false]
    );
    assert!(x.records.column("IGNORED").is_err() && x.records.column("RECORD_ID").is_err());
    assert_eq!(u64s(&x.rejects, "row"), [2, 3, 4]);
    assert_eq!(
        strings(&x.rejects, "reason"),
        [
            s("RECORD_ID: empty record id"),
            s("EFFECTIVE_DATE: unparsable date \"2026-13-45\""),
            s("AMOUNT: unparsable amount \"12,34\""),
        ]
    );
    assert_eq!(
        strings(&x.rejects, "erp_record_id"),
        [None, s("ERP-3"), s("ERP-4")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_extract_from_local_file_system_keeps_text_and_rejects_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("erp")).unwrap();
    std::fs::write(
        dir.path().join("erp/extract.csv"),
        CSV.replace("\"12,34\"", "12x"),
    )
    .unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let x = load(store, "erp/extract.csv", ExtractFormat::Csv, &mapping())
        .await
        .unwrap();
    assert_eq!(u64s(&x.rejects, "row"), [2, 3, 4]);
    assert_eq!(
        strings(&x.rejects, "reason")[2],
        s("AMOUNT: unparsable amount \"12x\"")
    );
    assert_eq!(
        strings(&x.records, "erp_record_id"),
        [s("ERP-1"), s("ERP-3"), s("ERP-4"), s("ERP-5")]
    );
    assert!(bools(&x.records, "_unusable_amount")[2]);
    assert_eq!(strings(&x.records, "po_number")[0], s("00123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_extract_from_memory_store_keeps_text_and_rejects_bad_rows() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    store
        .put(
            &Path::from("x/extract.csv"),
            PutPayload::from(CSV.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let x = load(store, "x/extract.csv", ExtractFormat::Csv, &mapping())
        .await
        .unwrap();
    assert_csv_extract(&x);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_extract_casts_typed_columns_to_text() {
    let mut df = df!(
        "RECORD_ID" => ["P-1", "P-2", "P-3"],
        "AMOUNT" => [Some(12500.5f64), None, Some(-1.0)],
        "EFFECTIVE_DATE" => ["2026-01-01", "2026-02-30", "2026-03-01"],
        "PO_NUMBER" => [Some(123i64), Some(7), None],
    )
    .unwrap();
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("extract.parquet"), &buf).unwrap();
    let columns: BTreeMap<String, String> = [
        ("erp_record_id", "RECORD_ID"),
        ("amount", "AMOUNT"),
        ("effective_date", "EFFECTIVE_DATE"),
        ("po_number", "PO_NUMBER"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for store in [
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()) as Arc<dyn ObjectStore>,
        Arc::new(InMemory::new()) as Arc<dyn ObjectStore>,
    ] {
        store
            .put(
                &Path::from("extract.parquet"),
                PutPayload::from(buf.clone()),
            )
            .await
            .unwrap();
        let x = load(store, "extract.parquet", ExtractFormat::Parquet, &columns)
            .await
            .unwrap();
        assert_eq!(x.rows_read, 3);
        assert_eq!(
            x.records.column("amount").unwrap().dtype(),
            &DataType::String
        );
        assert_eq!(
            strings(&x.records, "erp_record_id"),
            [s("P-1"), s("P-2"), s("P-3")]
        );
        assert_eq!(
            strings(&x.records, "amount"),
            [s("12500.5"), None, s("-1.0")]
        );
        assert_eq!(strings(&x.records, "po_number"), [s("123"), s("7"), None]);
        assert_eq!(u64s(&x.records, "_row"), [1, 2, 3]);
        assert_eq!(
            bools(&x.records, "_unusable_effective_date"),
            [false, true, false]
        );
        assert_eq!(
            strings(&x.rejects, "reason"),
            [s("EFFECTIVE_DATE: unparsable date \"2026-02-30\"")]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_column_error_names_file_column_and_available_columns() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    store
        .put(
            &Path::from("e.csv"),
            PutPayload::from(CSV.as_bytes().to_vec()),
        )
        .await
        .unwrap();
    let mut columns = mapping();
    columns.insert("vendor_id".into(), "VENDOR_NO".into());
    let err = load(store.clone(), "e.csv", ExtractFormat::Csv, &columns)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::MissingColumn { column, canonical, .. } if column == "VENDOR_NO" && canonical == "vendor_id")
    );
    let text = err.to_string();
    for needle in [
        "test://e.csv",
        "VENDOR_NO",
        "vendor_id",
        "RECORD_ID",
        "EXPIRY_DATE",
    ] {
        assert!(text.contains(needle), "{needle} not in: {text}");
    }
    let err = load(store.clone(), "absent.csv", ExtractFormat::Csv, &mapping())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExtractError::Read { .. }) && err.to_string().contains("test://absent.csv"),
        "{err}"
    );
    let err = load(store, "e.csv", ExtractFormat::Parquet, &mapping())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExtractError::Parse { .. }) && err.to_string().contains("test://e.csv"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_dataset_reconciles_to_exactly_the_expected_drift() {
    use contract_recon::reconcile::{demo_spec, reconcile, RunContext};
    use contract_recon::sandbox::dataset::{files, ERP_EXTRACT_COLUMNS};
    use contract_recon::sandbox::gen::{self, GenOptions};
    use std::collections::BTreeSet;

    let dir = tempfile::tempdir().unwrap();
    let mut opts = GenOptions::new(3_000, 42, dir.path());
    opts.snapshot = true;
    opts.documents = Some(false);
    let summary = tokio::task::spawn_blocking(move || gen::generate(&opts))
        .await
        .unwrap()
        .unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let columns: BTreeMap<String, String> = ERP_EXTRACT_COLUMNS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let extract = load(store, files::ERP_EXTRACT_CSV, ExtractFormat::Csv, &columns)
        .await
        .unwrap();
    assert_eq!(extract.rows_read, summary.extract_rows);

    // Rejects: same rows, same kinds.
    let kind_of = |reason: &str| {
        if reason.contains("empty record id") {
            "empty_erp_record_id"
        } else if reason.contains("unparsable date") {
            "bad_date"
        } else if reason.contains("unparsable amount") {
            "bad_amount"
        } else {
            "unknown"
        }
    };
    let got_rejects: BTreeSet<(u64, String)> = u64s(&extract.rejects, "row")
        .into_iter()
        .zip(strings(&extract.rejects, "reason"))
        .map(|(row, reason)| (row, kind_of(&reason.unwrap()).to_string()))
        .collect();
    let expected = read_csv_text(&dir.path().join(files::EXPECTED_REJECTS));
    let want_rejects: BTreeSet<(u64, String)> = text(&expected, "row")
        .into_iter()
        .zip(text(&expected, "reason_kind"))
        .map(|(row, kind)| (row.parse().unwrap(), kind))
        .collect();
    assert!(!want_rejects.is_empty());
    assert_eq!(got_rejects, want_rejects);

    let snapshot_path = dir.path().join(files::SNAPSHOT);
    let records = extract.records;
    let out = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(snapshot_path).unwrap();
        let snapshot = ParquetReader::new(file).finish().unwrap();
        let ctx = RunContext {
            run_id: "r".into(),
            job: "demo".into(),
            detected_at: "2026-11-01T00:00:00Z".into(),
            known_existing_contract_ids: Vec::new(),
        };
        reconcile(snapshot, records, &demo_spec(), &ctx).unwrap()
    })
    .await
    .unwrap();

    let got = drift_keys(&out.drift);
    let want = expected_drift(dir.path());
    crate::common::assert_drift_ids_unique(&out.drift);
    let missing: Vec<_> = want.difference(&got).take(10).collect();
    let extra: Vec<_> = got.difference(&want).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    for kind in [
        "unlinked_contract",
        "missing_in_erp",
        "link_conflict",
        "orphan_erp_record",
        "duplicate_link",
        "unusable_erp_value",
        "field_mismatch",
        "missing_document",
    ] {
        assert!(want.iter().any(|r| r.0 == kind), "fixture has no {kind}");
    }
}
