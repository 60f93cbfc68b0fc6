//! The streamed readers against whole-file reads and against Polars' own
//! Parquet reader: same records, same rejects, only the mapped columns fetched.

use super::csv::{read_csv, StreamRead};
use super::parquet::read_parquet_bytes;
use super::*;
use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, NullArray,
    RecordBatch, StringArray, TimestampMillisecondArray,
};
use bytes::Bytes;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::PutPayload;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `[erp.extract.columns]` of `jobs/demo.toml`.
fn demo_columns() -> BTreeMap<String, String> {
    crate::sandbox::dataset::erp_extract_columns()
}

fn assert_same(streamed: &Extract, whole: &Extract, what: &str) {
    assert!(
        streamed.records.equals_missing(&whole.records),
        "{what}: records differ\n{}\n{}",
        streamed.records,
        whole.records
    );
    assert!(
        streamed.rejects.equals_missing(&whole.rejects),
        "{what}: rejects differ\n{}\n{}",
        streamed.rejects,
        whole.rejects
    );
    assert_eq!(streamed.rows_read, whole.rows_read, "{what}");
}

/// Reads `bytes` as CSV through a [`StreamRead`] whose chunks are `chunk`
/// bytes long, on a blocking thread as `load_extract` does.
fn read_in_chunks(
    bytes: &Bytes,
    chunk: usize,
    fail_after: Option<usize>,
) -> Result<Extract, ExtractError> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut chunks: Vec<object_store::Result<Bytes>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if let Some(n) = fail_after {
        chunks.truncate(n);
        chunks.push(Err(object_store::Error::Generic {
            store: "test",
            source: "connection reset by peer".into(),
        }));
    }
    let reader = StreamRead::new(
        runtime.handle().clone(),
        futures::stream::iter(chunks).boxed(),
    );
    let columns = demo_columns();
    let raw = read_csv("test://x.csv", reader, &columns, bytes.len() as u64)?;
    finish("test://x.csv", raw, &columns)
}

#[test]
fn csv_read_in_small_chunks_equals_the_whole_file_read() {
    let mut files = vec![fixtures().join("demo/erp_extract.csv")];
    for name in [
        "utf8_bom.csv",
        "crlf.csv",
        "quoted_newlines.csv",
        "non_utf8_byte.csv",
        "ragged_rows.csv",
        "duplicate_erp_ids.csv",
        "spreadsheet_formulas.csv",
    ] {
        files.push(fixtures().join("bad").join(name));
    }
    for file in files {
        let bytes = Bytes::from(std::fs::read(&file).unwrap());
        let whole = parse_and_validate(
            "test://x.csv",
            bytes.clone(),
            ExtractFormat::Csv,
            &demo_columns(),
        )
        .unwrap();
        // One byte at a time splits the BOM, CRLF pairs and multi-byte
        // characters across chunks; the large file in 4 KiB pieces.
        let chunk = if bytes.len() > 100_000 { 4096 } else { 1 };
        let streamed = read_in_chunks(&bytes, chunk, None).unwrap();
        assert_same(&streamed, &whole, &file.display().to_string());
        assert_eq!(streamed.bytes_fetched, bytes.len() as u64);
        assert!(whole.records.height() > 0, "{}", file.display());
    }
}

#[test]
fn a_stream_that_breaks_off_fails_naming_the_url_and_the_last_line_read() {
    let bytes = Bytes::from(std::fs::read(fixtures().join("demo/erp_extract.csv")).unwrap());
    let err = read_in_chunks(&bytes, 4096, Some(3)).unwrap_err();
    let ExtractError::ReadStream { line, .. } = &err else {
        panic!("{err:?}");
    };
    // 12 KiB of ~150-byte lines: well past the header, well before the end.
    assert!(*line > 10 && *line < 200, "{err}");
    let chain = format!("{:#}", anyhow::Error::new(err));
    assert!(
        chain.starts_with("cannot read ERP extract test://x.csv past line "),
        "{chain}"
    );
    assert!(chain.contains("connection reset by peer"), "{chain}");
}

async fn load_from(
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    format: ExtractFormat,
) -> Result<Extract, ExtractError> {
    let columns = demo_columns();
    load_extract(ExtractSource {
        store,
        path,
        display_url: "test://extract",
        format,
        columns: &columns,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_from_a_local_folder_and_from_memory_equal_the_whole_file_read() {
    for (name, format) in [
        ("demo/erp_extract.csv", ExtractFormat::Csv),
        ("demo/erp_extract.parquet", ExtractFormat::Parquet),
        ("bad/wrong_types.parquet", ExtractFormat::Parquet),
    ] {
        let file = fixtures().join(name);
        let bytes = Bytes::from(std::fs::read(&file).unwrap());
        let whole =
            parse_and_validate("test://extract", bytes.clone(), format, &demo_columns()).unwrap();
        let local: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        let at = StorePath::from_filesystem_path(&file).unwrap();
        assert_same(&load_from(local, at, format).await.unwrap(), &whole, name);
        let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let at = StorePath::from("x/extract");
        memory.put(&at, PutPayload::from(bytes)).await.unwrap();
        assert_same(&load_from(memory, at, format).await.unwrap(), &whole, name);
    }
}

/// Polars' own Parquet reader, each mapped column cast to text (empty as
/// null): an independent reading to hold the loader's text forms against.
fn polars_texts(bytes: &Bytes, column: &str) -> Vec<Option<String>> {
    let frame = ParquetReader::new(std::io::Cursor::new(bytes.clone()))
        .finish()
        .unwrap();
    let text = frame
        .column(column)
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    text.str()
        .unwrap()
        .iter()
        .map(|v| v.filter(|v| !v.trim().is_empty()).map(str::to_string))
        .collect()
}

fn texts(frame: &DataFrame, column: &str) -> Vec<Option<String>> {
    frame
        .column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn parquet_text_forms_equal_polars_own_reading() {
    for name in ["demo/erp_extract.parquet", "bad/wrong_types.parquet"] {
        let bytes = Bytes::from(std::fs::read(fixtures().join(name)).unwrap());
        let raw = read_parquet_bytes("test://x.parquet", bytes.clone(), &demo_columns()).unwrap();
        for column in demo_columns().values() {
            assert_eq!(
                texts(&raw.frame, column),
                polars_texts(&bytes, column),
                "{name}: {column}"
            );
        }
    }
}

#[test]
fn parquet_types_read_as_their_text_forms() {
    let column = |name: &str, values: ArrayRef| (name.to_string(), values);
    let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
    dictionary.append_value("ACME-1");
    dictionary.append_null();
    dictionary.append_value("ACME-1");
    let batch = RecordBatch::try_from_iter([
        column(
            "RECORD_ID",
            Arc::new(StringArray::from(vec![Some("E-1"), Some(""), Some("E-3")])),
        ),
        column(
            "SD_CONTRACT_ID",
            Arc::new(Int64Array::from(vec![Some(1001), None, Some(-3)])),
        ),
        column("VENDOR_NO", Arc::new(dictionary.finish())),
        column("PO_NUMBER", Arc::new(NullArray::new(3))),
        column(
            "LEGAL_ENTITY",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
        column(
            "AMOUNT",
            Arc::new(
                Decimal128Array::from(vec![Some(123_450), Some(-5), None])
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
        ),
        column(
            "CURRENCY",
            Arc::new(Float64Array::from(vec![Some(1353.1), Some(100.0), None])),
        ),
        column(
            "EFFECTIVE_DATE",
            Arc::new(Date32Array::from(vec![Some(19_723), None, Some(0)])),
        ),
        column(
            "EXPIRY_DATE",
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_704_067_200_000),
                Some(1_704_067_200_250),
                None,
            ])),
        ),
        column("STATUS", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
        column(
            "DOC_SHA256",
            Arc::new(StringArray::from(vec![None::<&str>, None, None])),
        ),
        column("UNMAPPED", Arc::new(StringArray::from(vec!["x", "y", "z"]))),
    ])
    .unwrap();
    let mut file = Vec::new();
    let mut writer =
        ::parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let raw = read_parquet_bytes("test://t.parquet", Bytes::from(file), &demo_columns()).unwrap();
    let some = |v: &[Option<&str>]| v.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>();
    let f = &raw.frame;
    assert_eq!(
        texts(f, "RECORD_ID"),
        some(&[Some("E-1"), None, Some("E-3")])
    );
    assert_eq!(
        texts(f, "SD_CONTRACT_ID"),
        some(&[Some("1001"), None, Some("-3")])
    );
    assert_eq!(
        texts(f, "VENDOR_NO"),
        some(&[Some("ACME-1"), None, Some("ACME-1")])
    );
    assert_eq!(texts(f, "PO_NUMBER"), some(&[None, None, None]));
    assert_eq!(
        texts(f, "LEGAL_ENTITY"),
        some(&[Some("true"), Some("false"), None])
    );
    assert_eq!(
        texts(f, "AMOUNT"),
        some(&[Some("1234.50"), Some("-0.05"), None])
    );
    assert_eq!(
        texts(f, "CURRENCY"),
        some(&[Some("1353.1"), Some("100.0"), None])
    );
    assert_eq!(
        texts(f, "EFFECTIVE_DATE"),
        some(&[Some("2024-01-01"), None, Some("1970-01-01")])
    );
    assert_eq!(
        texts(f, "EXPIRY_DATE"),
        some(&[
            Some("2024-01-01 00:00:00"),
            Some("2024-01-01 00:00:00.250"),
            None
        ])
    );
    assert!(
        f.column("UNMAPPED").is_err(),
        "an unmapped column is not read"
    );
    assert_eq!(raw.rows_read, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_fetches_only_the_mapped_columns() {
    // The demo extract plus a wide column the job does not map.
    let demo = Bytes::from(std::fs::read(fixtures().join("demo/erp_extract.parquet")).unwrap());
    let mut frame = ParquetReader::new(std::io::Cursor::new(demo.clone()))
        .finish()
        .unwrap();
    let notes: Vec<String> = (0..frame.height())
        .map(|i| format!("{i:08}").repeat(1024))
        .collect();
    frame
        .with_column(Column::new("NOTES".into(), notes))
        .unwrap();
    let mut wide = Vec::new();
    ParquetWriter::new(&mut wide)
        .with_compression(ParquetCompression::Uncompressed)
        .finish(&mut frame)
        .unwrap();
    let size = wide.len() as u64;
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let at = StorePath::from("wide.parquet");
    memory.put(&at, PutPayload::from(wide)).await.unwrap();
    let loaded = load_from(memory, at, ExtractFormat::Parquet).await.unwrap();
    let narrow = parse_and_validate(
        "test://extract",
        demo,
        ExtractFormat::Parquet,
        &demo_columns(),
    )
    .unwrap();
    assert_same(&loaded, &narrow, "wide file");
    assert!(
        loaded.bytes_fetched * 4 < size,
        "fetched {} of {size} bytes",
        loaded.bytes_fetched
    );
}

#[test]
fn blank_values_are_null_and_others_keep_their_spaces() {
    let csv = "RECORD_ID,SD_CONTRACT_ID,VENDOR_NO,PO_NUMBER,LEGAL_ENTITY,STATUS,AMOUNT,CURRENCY,EFFECTIVE_DATE,EXPIRY_DATE,DOC_SHA256\n\
               \x20E-1 ,\t, V-9,,LE,active,1.00,USD,2024-01-01,2025-01-01,\x20\x20\n";
    let x = parse_and_validate(
        "test://b.csv",
        Bytes::from(csv),
        ExtractFormat::Csv,
        &demo_columns(),
    )
    .unwrap();
    let some = |v: &[Option<&str>]| v.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>();
    assert_eq!(texts(&x.records, "erp_record_id"), some(&[Some(" E-1 ")]));
    assert_eq!(texts(&x.records, "spotdraft_contract_id"), some(&[None]));
    assert_eq!(texts(&x.records, "vendor_id"), some(&[Some(" V-9")]));
    assert_eq!(texts(&x.records, "po_number"), some(&[None]));
    assert_eq!(texts(&x.records, "document_sha256"), some(&[None]));
}
