//! The bad-extract corpus (`fixtures/bad/`, listed in its README): each file
//! loaded through a real `LocalFileSystem` store with the demo job's mapping,
//! its outcome written out by hand.

use super::extract::{load_extract, Extract, ExtractError, ExtractFormat, ExtractSource};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad")
}

/// `[erp.extract.columns]` of `jobs/demo.toml`.
fn demo_columns() -> BTreeMap<String, String> {
    crate::sandbox::dataset::erp_extract_columns()
}

async fn load_path(path: &Path) -> Result<Extract, ExtractError> {
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let format = if path.extension().is_some_and(|e| e == "parquet") {
        ExtractFormat::Parquet
    } else {
        ExtractFormat::Csv
    };
    let columns = demo_columns();
    let display = path.display().to_string();
    load_extract(ExtractSource {
        store,
        path: object_store::path::Path::from_filesystem_path(path).unwrap(),
        display_url: &display,
        format,
        columns: &columns,
    })
    .await
}

async fn load(name: &str) -> Result<Extract, ExtractError> {
    load_path(&corpus().join(name)).await
}

/// The message of a load that must fail, checked to name the file.
async fn error_of(name: &str) -> String {
    let e = load(name).await.expect_err("the load must fail");
    let text = e.to_string();
    assert!(text.contains(&format!("fixtures/bad/{name}")), "{text}");
    text
}

fn texts(df: &DataFrame, column: &str) -> Vec<Option<String>> {
    let c = df.column(column).unwrap().cast(&DataType::String).unwrap();
    c.str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

/// (row, reason, erp_record_id) of every reject.
fn rejects(x: &Extract) -> Vec<(u64, String, String)> {
    let rows: Vec<u64> = x
        .rejects
        .column("row")
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    let reasons = texts(&x.rejects, "reason");
    let ids = texts(&x.rejects, "erp_record_id");
    rows.into_iter()
        .zip(reasons)
        .zip(ids)
        .map(|((r, reason), id)| (r, reason.unwrap(), id.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn an_empty_file_fails_saying_so() {
    let text = error_of("empty.csv").await;
    assert!(
        text.contains("is empty: no header line and no rows"),
        "{text}"
    );
}

#[tokio::test]
async fn a_header_only_file_loads_no_rows_for_the_guard_to_refuse() {
    let x = load("header_only.csv").await.unwrap();
    assert_eq!(
        (x.rows_read, x.records.height(), x.rejects.height()),
        (0, 0, 0)
    );
    assert_eq!(x.rows_valid(), 0);
}

#[tokio::test]
async fn a_utf8_bom_is_skipped() {
    let x = load("utf8_bom.csv").await.unwrap();
    assert_eq!(
        texts(&x.records, "erp_record_id"),
        some(&["ERP-19741869", "ERP-27110656"])
    );
    assert_eq!(x.rejects.height(), 0);
}

#[tokio::test]
async fn crlf_line_ends_leave_no_carriage_return_in_values() {
    let x = load("crlf.csv").await.unwrap();
    assert_eq!(
        texts(&x.records, "expiry_date"),
        some(&["2027-08-12", "2028-04-17"])
    );
    assert_eq!(texts(&x.records, "document_sha256"), vec![None, None]);
    assert_eq!(x.rejects.height(), 0);
}

#[tokio::test]
async fn a_non_utf8_byte_rejects_its_row_naming_line_column_and_byte() {
    let x = load("non_utf8_byte.csv").await.unwrap();
    assert_eq!(x.rows_read, 3);
    assert_eq!(
        texts(&x.records, "erp_record_id"),
        some(&["ERP-19741869", "ERP-34479443"])
    );
    assert_eq!(
        rejects(&x),
        vec![(
            2,
            "line 3: VENDOR_NO: not valid UTF-8 (byte 0xE9 at offset 4); the extract must be UTF-8"
                .to_string(),
            "ERP-27110656".to_string()
        )]
    );
    assert_eq!(x.rows_valid(), 2);
}

#[tokio::test]
async fn quoted_newlines_stay_inside_their_field() {
    let x = load("quoted_newlines.csv").await.unwrap();
    assert_eq!(
        texts(&x.records, "po_number"),
        some(&["PO 0059\nline two, with \"quotes\"", "08514158"])
    );
    assert_eq!(x.rows_read, 2);
    assert_eq!(x.rejects.height(), 0);
}

#[tokio::test]
async fn a_10_mb_field_loads_whole() {
    // Generated, not committed: the README lists it as `10mb_field.csv`.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("10mb_field.csv");
    let big = "x".repeat(10 * 1024 * 1024);
    let text = format!(
        "{}\nERP-1,1001,V-1,\"{big}\",LE-GB-01,ACTIVE,1.00,GBP,2025-08-13,2027-08-12,\nERP-2,1002,V-2,PO-2,LE-GB-01,ACTIVE,2.00,GBP,2025-08-13,2027-08-12,\n",
        "RECORD_ID,SD_CONTRACT_ID,VENDOR_NO,PO_NUMBER,LEGAL_ENTITY,STATUS,AMOUNT,CURRENCY,EFFECTIVE_DATE,EXPIRY_DATE,DOC_SHA256"
    );
    std::fs::write(&path, text).unwrap();
    let x = load_path(&path).await.unwrap();
    let po = texts(&x.records, "po_number");
    assert_eq!(po[0].as_ref().map(String::len), Some(10 * 1024 * 1024));
    assert_eq!(po[1].as_deref(), Some("PO-2"));
    assert_eq!(x.rejects.height(), 0);
}

#[tokio::test]
async fn a_duplicate_column_name_fails_naming_it() {
    let text = error_of("duplicate_columns.csv").await;
    assert!(
        text.ends_with("names column `VENDOR_NO` twice in its header (columns 3 and 8)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_semicolon_file_fails_naming_the_expected_delimiter() {
    let text = error_of("semicolon_delimiter.csv").await;
    assert!(
        text.contains("its header has 1 column (`RECORD_ID;SD_CONTRACT_ID;"),
        "{text}"
    );
    assert!(
        text.contains("none of the mapped columns (expected AMOUNT, CURRENCY,"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "the job reads `,`-delimited CSV and the header contains `;`; export it with `,`"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn ragged_rows_are_rejected_with_their_line_and_field_count() {
    let x = load("ragged_rows.csv").await.unwrap();
    assert_eq!(x.rows_read, 4);
    assert_eq!(
        texts(&x.records, "erp_record_id"),
        some(&["ERP-19741869", "ERP-34479443"])
    );
    let rows: Vec<u64> = x
        .records
        .column("_row")
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(
        rows,
        vec![1, 4],
        "row numbers are the file's, bad rows counted"
    );
    // `ERP-X` with vendor `2` is not a record, so it cannot become a false orphan.
    assert_eq!(
        rejects(&x),
        vec![
            (
                2,
                "line 3: 3 fields where the header has 11".to_string(),
                "ERP-X".to_string()
            ),
            (
                3,
                "line 4: 12 fields where the header has 11".to_string(),
                "ERP-27110656".to_string()
            ),
        ]
    );
}

#[tokio::test]
async fn duplicate_erp_ids_are_both_records_for_reconciliation_to_report() {
    let x = load("duplicate_erp_ids.csv").await.unwrap();
    assert_eq!(
        texts(&x.records, "erp_record_id"),
        some(&["ERP-19741869", "ERP-19741869", "ERP-27110656"])
    );
    assert_eq!(
        texts(&x.records, "vendor_id")[1].as_deref(),
        Some("V-17025")
    );
    assert_eq!(x.rejects.height(), 0);
}

#[tokio::test]
async fn spreadsheet_formulas_load_as_plain_text() {
    let x = load("spreadsheet_formulas.csv").await.unwrap();
    assert_eq!(
        texts(&x.records, "vendor_id"),
        some(&[
            "=HYPERLINK(\"http://evil.example/x\",\"click\")",
            "@SUM(A1:A9)"
        ])
    );
    assert_eq!(
        texts(&x.records, "po_number"),
        some(&["+00594165", "-08514158"])
    );
    assert_eq!(x.rejects.height(), 0);
}

#[tokio::test]
async fn numbers_and_dates_in_parquet_read_as_text_and_a_serial_date_is_rejected() {
    let x = load("wrong_types.parquet").await.unwrap();
    assert_eq!(
        texts(&x.records, "spotdraft_contract_id"),
        some(&["1001", "1002"])
    );
    assert_eq!(texts(&x.records, "amount"), some(&["2868973.63", "1353.1"]));
    assert_eq!(
        texts(&x.records, "expiry_date"),
        some(&["2027-08-12", "2028-04-17"])
    );
    assert_eq!(
        rejects(&x),
        vec![
            (
                1,
                "EFFECTIVE_DATE: unparsable date \"45882\"".to_string(),
                "ERP-19741869".to_string()
            ),
            (
                2,
                "EFFECTIVE_DATE: unparsable date \"45766\"".to_string(),
                "ERP-27110656".to_string()
            ),
        ]
    );
    // Still ERP records, flagged so their dates are never compared.
    let flags = x.records.column("_unusable_effective_date").unwrap();
    let flags: Vec<Option<bool>> = flags.bool().unwrap().iter().collect();
    assert_eq!(flags, vec![Some(true), Some(true)]);
}

#[tokio::test]
async fn a_binary_parquet_column_fails_naming_it_and_its_type() {
    let text = error_of("binary_column.parquet").await;
    assert!(
        text.ends_with("column `VENDOR_NO` is of type binary; mapped columns must hold text, numbers, dates or booleans"),
        "{text}"
    );
}

#[tokio::test]
async fn a_truncated_parquet_file_fails_without_a_panic() {
    let text = error_of("truncated.parquet").await;
    assert!(text.starts_with("cannot parse ERP extract"), "{text}");
    assert!(text.ends_with("as Parquet"), "{text}");
}

#[test]
fn errors_do_not_repeat_their_cause() {
    // anyhow's `{:#}` prints the chain: the cause once.
    let e = super::extract::parse_and_validate(
        "x.parquet",
        bytes::Bytes::from_static(b"PAR1 not parquet"),
        ExtractFormat::Parquet,
        &demo_columns(),
    )
    .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::new(e));
    let cause = chain.split_once(": ").unwrap().1.to_string();
    assert!(!cause.is_empty(), "{chain}");
    assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
}

/// The corpus's Parquet files are what this code writes: `wrong_types.parquet`
/// (ids, amounts as numbers, effective dates as spreadsheet serial numbers,
/// expiry dates as dates), `binary_column.parquet` (the vendor as bytes) and
/// `truncated.parquet` (the demo extract's first 4,000 bytes). Written to a
/// temporary folder and compared with the committed files, read back; with
/// `WRITE_BAD_CORPUS=1` it rewrites the committed files instead.
#[test]
fn the_committed_parquet_corpus_is_what_this_code_writes() {
    let rewrite = std::env::var_os("WRITE_BAD_CORPUS").is_some();
    let tmp = tempfile::tempdir().unwrap();
    let dir = if rewrite {
        corpus()
    } else {
        tmp.path().to_path_buf()
    };
    let base = || {
        df!(
            "RECORD_ID" => ["ERP-19741869", "ERP-27110656"],
            "SD_CONTRACT_ID" => [1001i64, 1002],
            "VENDOR_NO" => ["V-17024", "V-55697"],
            "PO_NUMBER" => ["00594165", "08514158"],
            "LEGAL_ENTITY" => ["LE-GB-01", "LE-US-02"],
            "STATUS" => ["ACTIVE", "PENDING_SIGNATURE"],
            "AMOUNT" => [2868973.63f64, 1353.10],
            "CURRENCY" => ["GBP", "USD"],
            "EFFECTIVE_DATE" => [45882i64, 45766],
            "EXPIRY_DATE" => ["2027-08-12", "2028-04-17"],
            "DOC_SHA256" => [None::<&str>, None],
        )
        .unwrap()
        .lazy()
        .with_column(col("EXPIRY_DATE").cast(DataType::Date))
    };
    let write = |name: &str, lf: LazyFrame| {
        let mut df = lf.collect().unwrap();
        let mut f = std::fs::File::create(dir.join(name)).unwrap();
        ParquetWriter::new(&mut f).finish(&mut df).unwrap();
    };
    write("wrong_types.parquet", base());
    write(
        "binary_column.parquet",
        base().with_column(col("VENDOR_NO").cast(DataType::Binary)),
    );
    let demo = std::fs::read(corpus().join("../demo/erp_extract.parquet")).unwrap();
    std::fs::write(dir.join("truncated.parquet"), &demo[..4000]).unwrap();
    let read = |path: PathBuf| {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ParquetReader::new(file).finish().unwrap()
    };
    for name in ["wrong_types.parquet", "binary_column.parquet"] {
        let (written, committed) = (read(dir.join(name)), read(corpus().join(name)));
        assert!(
            written.equals_missing(&committed),
            "fixtures/bad/{name} is stale: rewrite it with WRITE_BAD_CORPUS=1 cargo test --lib parquet_corpus"
        );
    }
    assert_eq!(
        std::fs::read(dir.join("truncated.parquet")).unwrap(),
        std::fs::read(corpus().join("truncated.parquet")).unwrap(),
        "fixtures/bad/truncated.parquet is stale"
    );
}

#[test]
fn a_non_utf8_header_fails_naming_line_1_and_the_column() {
    let e = super::extract::parse_and_validate(
        "latin1.csv",
        bytes::Bytes::from_static(b"RECORD_ID,VENDOR_N\xd4\nERP-1,V-1\n"),
        ExtractFormat::Csv,
        &demo_columns(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ERP extract latin1.csv, line 1 (header): column 2 is not valid UTF-8 (byte 0xD4 at offset 8): the extract must be UTF-8"
    );
}

mod guard {
    use super::super::extract::{GuardError, GuardInput};
    use super::*;
    use crate::job::ExtractGuard;
    use chrono::{TimeZone, Utc};

    fn extract_of(rows: usize) -> Extract {
        let mut text = String::from("RECORD_ID\n");
        for i in 0..rows {
            text.push_str(&format!("ERP-{i}\n"));
        }
        let columns = BTreeMap::from([("erp_record_id".to_string(), "RECORD_ID".to_string())]);
        super::super::extract::parse_and_validate(
            "x.csv",
            bytes::Bytes::from(text),
            ExtractFormat::Csv,
            &columns,
        )
        .unwrap()
    }

    fn input(previous: Option<u64>, age_hours: i64) -> GuardInput<'static> {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 6, 0, 0).unwrap();
        GuardInput {
            url: "x.csv",
            previous: previous.map(|n| ("run-1", n)),
            modified: Some(now - chrono::Duration::hours(age_hours)),
            now,
        }
    }

    #[test]
    fn a_drop_of_exactly_the_share_passes_and_one_more_row_fails() {
        let guard = ExtractGuard::default();
        assert_eq!(
            extract_of(5).check_guard(&guard, &input(Some(10), 1)),
            Ok(())
        );
        let err = extract_of(4)
            .check_guard(&guard, &input(Some(10), 1))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERP extract x.csv has 4 valid rows, 10 in the last complete nightly run run-1: a drop of 60.0%, more than [erp.extract] max_row_drop = 0.5; no report or plan was made (run --accept-extract to run on it anyway)"
        );
        // A first run has nothing to compare with; a growth is no drop.
        assert_eq!(extract_of(1).check_guard(&guard, &input(None, 1)), Ok(()));
        assert_eq!(
            extract_of(9).check_guard(&guard, &input(Some(3), 1)),
            Ok(())
        );
    }

    #[test]
    fn age_is_checked_only_with_max_age_hours() {
        let mut guard = ExtractGuard::default();
        assert_eq!(
            extract_of(1).check_guard(&guard, &input(None, 1000)),
            Ok(())
        );
        guard.max_age = Some(std::time::Duration::from_secs(36 * 3600));
        assert_eq!(extract_of(1).check_guard(&guard, &input(None, 36)), Ok(()));
        assert_eq!(
            extract_of(1).check_guard(&guard, &input(None, 37)),
            Err(GuardError::TooOld {
                url: "x.csv".into(),
                modified: "2026-02-28T17:00:00Z".into(),
                age_hours: 37.0,
                max_age_hours: 36.0,
            })
        );
    }

    #[test]
    fn min_rows_zero_lets_an_empty_extract_through() {
        let guard = ExtractGuard {
            min_rows: 0,
            ..ExtractGuard::default()
        };
        assert_eq!(extract_of(0).check_guard(&guard, &input(None, 1)), Ok(()));
        assert!(matches!(
            extract_of(0).check_guard(&ExtractGuard::default(), &input(None, 1)),
            Err(GuardError::TooFewRows {
                rows: 0,
                min_rows: 1,
                ..
            })
        ));
    }
}
