//! CSV safety: formula-like cells are neutralized in `drift.csv` and
//! `rejects.csv`, null and empty stay apart, and the Parquet files keep raw values.

use super::*;

/// Raw values of one text column, with what `drift.csv` must hold for each.
const CELLS: [(Option<&str>, Option<&str>); 10] = [
    (
        Some("=HYPERLINK(\"http://x\")"),
        Some("'=HYPERLINK(\"http://x\")"),
    ),
    (Some("+1+1"), Some("'+1+1")),
    (Some("-12.5"), Some("'-12.5")),
    (Some("@SUM(A1)"), Some("'@SUM(A1)")),
    (Some("\tTAB"), Some("'\tTAB")),
    (Some("\rCR"), Some("'\rCR")),
    (Some("'quoted"), Some("''quoted")),
    (Some("12.5 = x"), Some("12.5 = x")),
    (Some(""), Some("")),
    (None, None),
];

fn drift_with_cells() -> DataFrame {
    let mut df = drift_frame("r1");
    df.vstack_mut(&drift_frame("r1")).unwrap();
    let raw: Vec<Option<&str>> = CELLS.iter().map(|c| c.0).collect();
    df.with_column(Column::new("erp_value".into(), raw.clone()))
        .unwrap();
    df.with_column(Column::new("contract_id".into(), raw))
        .unwrap();
    df
}

fn rejects_with_cells() -> DataFrame {
    df! {
        "row" => [1u64, 2, 3],
        "reason" => ["AMOUNT: unparsable amount \"=1+2\"", "-", ""],
        "erp_record_id" => [Some("=cmd|' /C calc'!A0"), Some(""), None],
    }
    .unwrap()
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

fn owned(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(String::from)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_cells_are_neutralized_and_parquet_keeps_raw_values() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let info = run("r1", "2025-03-01", "2025-03-01T06:05:00Z");
    let drift = drift_with_cells();
    let summary = Summary::from_drift(&info, &drift, inputs()).unwrap();
    let loc = write_reports(
        store.clone(),
        &Path::from("out"),
        &info,
        &drift,
        &rejects_with_cells(),
        &summary,
        &ReportFormats::default(),
    )
    .await
    .unwrap();
    let (drift_dir, rejects_dir) = (loc.tables["drift"].clone(), loc.tables["rejects"].clone());

    let csv = get_bytes(store.as_ref(), &format!("{drift_dir}/drift.csv")).await;
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "the prefix sits inside the CSV quoting: {text}"
    );
    let back = read_csv_as_strings(csv);
    let want: Vec<Option<&str>> = CELLS.iter().map(|c| c.1).collect();
    assert_eq!(strings(&back, "erp_value"), owned(&want));
    assert_eq!(strings(&back, "contract_id"), owned(&want));
    assert_eq!(
        strings(&back, "detected_at")[0].as_deref(),
        Some("2025-03-01T06:01:02Z"),
        "other cells are unchanged"
    );

    let parquet = get_bytes(store.as_ref(), &format!("{drift_dir}/drift.parquet")).await;
    let raw = ParquetReader::new(std::io::Cursor::new(parquet))
        .finish()
        .unwrap();
    let want: Vec<Option<&str>> = CELLS.iter().map(|c| c.0).collect();
    assert_eq!(strings(&raw, "erp_value"), owned(&want));

    let csv = get_bytes(store.as_ref(), &format!("{rejects_dir}/rejects.csv")).await;
    let back = read_csv_as_strings(csv);
    assert_eq!(
        strings(&back, "reason"),
        owned(&[
            Some("AMOUNT: unparsable amount \"=1+2\""),
            Some("'-"),
            Some("")
        ])
    );
    assert_eq!(
        strings(&back, "erp_record_id"),
        owned(&[Some("'=cmd|' /C calc'!A0"), Some(""), None])
    );
    assert_eq!(
        strings(&back, "row"),
        owned(&[Some("1"), Some("2"), Some("3")])
    );
    let parquet = get_bytes(store.as_ref(), &format!("{rejects_dir}/rejects.parquet")).await;
    let raw = ParquetReader::new(std::io::Cursor::new(parquet))
        .finish()
        .unwrap();
    assert!(raw.equals_missing(&rejects_with_cells()), "{raw}");
}

#[test]
fn null_is_an_empty_field_and_empty_text_is_quoted() {
    let df = df! {
        "a" => [Some(""), None, Some("x")],
        "b" => [Some(1u64), Some(2), Some(3)],
    }
    .unwrap();
    let bytes = super::super::write::write_csv(&df).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), "a,b\n\"\",1\n,2\nx,3\n");
}

#[test]
fn removing_one_leading_quote_gives_back_every_raw_value() {
    let raw: Vec<Option<&str>> = CELLS.iter().map(|c| c.0).collect();
    let df = df! { "v" => raw.clone() }.unwrap();
    let safe = super::super::write::csv_safe(&df).unwrap();
    let undone: Vec<Option<String>> = strings(&safe, "v")
        .into_iter()
        .map(|v| v.map(|s| s.strip_prefix('\'').map(String::from).unwrap_or(s)))
        .collect();
    assert_eq!(undone, owned(&raw));
}

#[test]
fn formulas_from_the_bad_extract_corpus_are_text_in_the_csv() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/bad/spreadsheet_formulas.csv");
    let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
    let columns: std::collections::BTreeMap<String, String> = [
        ("erp_record_id", "RECORD_ID"),
        ("vendor_id", "VENDOR_NO"),
        ("po_number", "PO_NUMBER"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let extract = crate::erp::extract::parse_and_validate(
        "spreadsheet_formulas.csv",
        bytes,
        crate::erp::extract::ExtractFormat::Csv,
        &columns,
    )
    .unwrap();
    let records = extract
        .records
        .select(["erp_record_id", "vendor_id", "po_number"])
        .unwrap();
    let csv = String::from_utf8(super::super::write::write_csv(&records).unwrap()).unwrap();
    assert_eq!(
        csv,
        "erp_record_id,vendor_id,po_number\n\
         ERP-19741869,\"'=HYPERLINK(\"\"http://evil.example/x\"\",\"\"click\"\")\",'+00594165\n\
         ERP-27110656,'@SUM(A1:A9),'-08514158\n"
    );
}
