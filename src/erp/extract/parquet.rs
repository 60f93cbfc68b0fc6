//! The Parquet reader: the `parquet` crate's async reader over ranged reads of
//! the object store ([`StoreReader`]): the footer first, then only the mapped
//! columns' chunks, decoded in batches into Polars text columns. A column of
//! any type with a text form (strings, integers, floats, decimals, booleans,
//! dates, timestamps, dictionaries of those) is read as text; others fail
//! naming the column and its type.

use super::{check_columns, mapped_columns, ExtractError, ExtractFormat, RawRows, ROW};
use ::parquet::arrow::arrow_reader::{ArrowReaderBuilder, ParquetRecordBatchReaderBuilder};
use ::parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use ::parquet::arrow::ProjectionMask;
use ::parquet::errors::ParquetError;
use ::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use arrow_array::cast::AsArray;
use arrow_array::temporal_conversions::{as_date, as_datetime};
use arrow_array::types::*;
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryFutureExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use polars::prelude::{Column, DataFrame, IntoColumn, StringChunkedBuilder};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rows decoded at a time: the memory a batch holds beyond the columns built.
const BATCH_ROWS: usize = 64 * 1024;

/// Ranged reads of one object of known size, for the `parquet` crate's async
/// reader.
#[derive(Clone)]
pub(super) struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    /// Bytes fetched so far (shared by the reader's clones).
    fetched: Arc<AtomicU64>,
}

impl StoreReader {
    /// Reads `path` of `store`, `size` bytes long.
    pub(super) fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64) -> StoreReader {
        StoreReader {
            store,
            path,
            size,
            fetched: Arc::default(),
        }
    }
}

fn store_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ::parquet::errors::Result<Bytes>> {
        self.fetched
            .fetch_add(range.end.saturating_sub(range.start), Ordering::Relaxed);
        self.store
            .get_range(&self.path, range)
            .map_err(store_err)
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, ::parquet::errors::Result<Vec<Bytes>>> {
        let bytes: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        self.fetched.fetch_add(bytes, Ordering::Relaxed);
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(store_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ::parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> BoxFuture<'a, ::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Streams a Parquet extract through `reader`, keeping the mapped columns as
/// text, with a `_row` column.
pub(super) async fn read_parquet(
    url: &str,
    reader: StoreReader,
    columns: &BTreeMap<String, String>,
) -> Result<RawRows, ExtractError> {
    let fetched = reader.fetched.clone();
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| parse_err(url, e))?;
    let (builder, mut rows) = project(url, builder, columns)?;
    let mut batches = builder.build().map_err(|e| parse_err(url, e))?;
    while let Some(batch) = batches.next().await {
        rows.push(url, &batch.map_err(|e| parse_err(url, e))?)?;
    }
    rows.finish(url, fetched.load(Ordering::Relaxed))
}

/// Reads a whole Parquet file already in memory, as [`read_parquet`] does.
pub(super) fn read_parquet_bytes(
    url: &str,
    bytes: Bytes,
    columns: &BTreeMap<String, String>,
) -> Result<RawRows, ExtractError> {
    let size = bytes.len() as u64;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| parse_err(url, e))?;
    let (builder, mut rows) = project(url, builder, columns)?;
    for batch in builder.build().map_err(|e| parse_err(url, e))? {
        rows.push(url, &batch.map_err(|e| parse_err(url, e.into()))?)?;
    }
    rows.finish(url, size)
}

fn parse_err(url: &str, e: ParquetError) -> ExtractError {
    match e {
        ParquetError::External(e) => match e.downcast::<object_store::Error>() {
            Ok(source) => ExtractError::Read {
                url: url.to_string(),
                source: *source,
            },
            Err(e) => ExtractError::Parse {
                url: url.to_string(),
                format: "Parquet",
                source: e,
            },
        },
        e => ExtractError::Parse {
            url: url.to_string(),
            format: "Parquet",
            source: e.into(),
        },
    }
}

/// Checks the file's columns against the mapping and narrows `builder` to the
/// mapped ones; returns the builder and an empty [`TextRows`] for them.
fn project<T>(
    url: &str,
    builder: ArrowReaderBuilder<T>,
    columns: &BTreeMap<String, String>,
) -> Result<(ArrowReaderBuilder<T>, TextRows), ExtractError> {
    let schema: SchemaRef = builder.schema().clone();
    let available: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    check_columns(url, ExtractFormat::Parquet, &available, columns)?;
    // (root index, name) of each mapped column, in file order: the order
    // the projected batches hold them in.
    let mut kept: Vec<(usize, String)> = Vec::new();
    for name in mapped_columns(columns) {
        let at = available.iter().position(|a| a == name).unwrap_or_default();
        let dtype = schema.field(at).data_type();
        if !has_text_form(dtype) {
            return Err(ExtractError::ColumnType {
                url: url.to_string(),
                column: name.to_string(),
                dtype: type_name(dtype),
            });
        }
        kept.push((at, name.to_string()));
    }
    kept.sort();
    let mask = ProjectionMask::roots(builder.parquet_schema(), kept.iter().map(|(at, _)| *at));
    let rows = TextRows {
        columns: kept
            .iter()
            .map(|(_, n)| StringChunkedBuilder::new(n.as_str().into(), 0))
            .collect(),
        names: kept.into_iter().map(|(_, n)| n).collect(),
        height: 0,
        text: String::new(),
    };
    Ok((
        builder.with_projection(mask).with_batch_size(BATCH_ROWS),
        rows,
    ))
}

/// Whether values of `dtype` have a text form the loader gives them.
fn has_text_form(dtype: &DataType) -> bool {
    match dtype {
        DataType::Dictionary(_, values) => has_text_form(values),
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(_, _)
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => true,
        _ => false,
    }
}

/// A type's name for messages: `binary`, `list<int64>`, `struct`, ...
fn type_name(dtype: &DataType) -> String {
    match dtype {
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".to_string(),
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _) => format!("list<{}>", type_name(item.data_type())),
        DataType::Struct(_) => "struct".to_string(),
        DataType::Map(_, _) => "map".to_string(),
        other => other.to_string().to_lowercase(),
    }
}

/// The mapped columns built as text, batch by batch.
struct TextRows {
    names: Vec<String>,
    columns: Vec<StringChunkedBuilder>,
    height: usize,
    text: String,
}

impl TextRows {
    /// Appends a decoded batch (its columns in the order of `names`).
    fn push(&mut self, url: &str, batch: &RecordBatch) -> Result<(), ExtractError> {
        for (i, column) in self.columns.iter_mut().enumerate() {
            append_text(batch.column(i).as_ref(), column, &mut self.text).map_err(|dtype| {
                ExtractError::ColumnType {
                    url: url.to_string(),
                    column: self.names[i].clone(),
                    dtype,
                }
            })?;
        }
        self.height += batch.num_rows();
        Ok(())
    }

    fn finish(self, url: &str, bytes_fetched: u64) -> Result<RawRows, ExtractError> {
        let height = self.height;
        let rows: Vec<u64> = (1..=height as u64).collect();
        let mut columns = vec![Column::new(ROW.into(), rows)];
        columns.extend(self.columns.into_iter().map(|b| b.finish().into_column()));
        let frame = DataFrame::new(height, columns).map_err(|e| ExtractError::Parse {
            url: url.to_string(),
            format: "Parquet",
            source: e.into(),
        })?;
        Ok(RawRows {
            frame,
            bad: Vec::new(),
            rows_read: height as u64,
            bytes_fetched,
        })
    }
}

/// Appends each value of `array` as text (text that is empty or only
/// whitespace as null); `Err` names a type without a text form.
fn append_text(
    array: &dyn Array,
    out: &mut StringChunkedBuilder,
    text: &mut String,
) -> Result<(), String> {
    fn each<T>(
        out: &mut StringChunkedBuilder,
        values: impl Iterator<Item = Option<T>>,
        text: &mut String,
        mut write: impl FnMut(&mut String, T),
    ) {
        for v in values {
            match v {
                None => out.append_null(),
                Some(v) => {
                    text.clear();
                    write(text, v);
                    if text.trim().is_empty() {
                        out.append_null();
                    } else {
                        out.append_value(text.as_str());
                    }
                }
            }
        }
    }
    fn display<T: std::fmt::Display>(text: &mut String, v: T) {
        let _ = write!(text, "{v}");
    }
    fn debug<T: std::fmt::Debug>(text: &mut String, v: T) {
        let _ = write!(text, "{v:?}");
    }
    fn strings<'a>(out: &mut StringChunkedBuilder, values: impl Iterator<Item = Option<&'a str>>) {
        for v in values {
            match v {
                Some(s) if !s.trim().is_empty() => out.append_value(s),
                _ => out.append_null(),
            }
        }
    }
    fn timestamps<T: ArrowPrimitiveType<Native = i64>>(
        array: &dyn Array,
        out: &mut StringChunkedBuilder,
        text: &mut String,
    ) {
        each(out, array.as_primitive::<T>().iter(), text, |t, v| {
            if let Some(at) = as_datetime::<T>(v) {
                display(t, at);
            }
        });
    }
    fn decimals<T: DecimalType>(
        array: &dyn Array,
        out: &mut StringChunkedBuilder,
        text: &mut String,
        precision: u8,
        scale: i8,
    ) {
        each(out, array.as_primitive::<T>().iter(), text, |t, v| {
            t.push_str(&T::format_decimal(v, precision, scale));
        });
    }
    match array.data_type() {
        DataType::Null => (0..array.len()).for_each(|_| out.append_null()),
        DataType::Utf8 => strings(out, array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(out, array.as_string::<i64>().iter()),
        DataType::Utf8View => strings(out, array.as_string_view().iter()),
        DataType::Boolean => each(out, array.as_boolean().iter(), text, display),
        DataType::Int8 => each(out, array.as_primitive::<Int8Type>().iter(), text, display),
        DataType::Int16 => each(out, array.as_primitive::<Int16Type>().iter(), text, display),
        DataType::Int32 => each(out, array.as_primitive::<Int32Type>().iter(), text, display),
        DataType::Int64 => each(out, array.as_primitive::<Int64Type>().iter(), text, display),
        DataType::UInt8 => each(out, array.as_primitive::<UInt8Type>().iter(), text, display),
        DataType::UInt16 => each(
            out,
            array.as_primitive::<UInt16Type>().iter(),
            text,
            display,
        ),
        DataType::UInt32 => each(
            out,
            array.as_primitive::<UInt32Type>().iter(),
            text,
            display,
        ),
        DataType::UInt64 => each(
            out,
            array.as_primitive::<UInt64Type>().iter(),
            text,
            display,
        ),
        // As Polars writes floats: `-1.0`, `12500.5`.
        DataType::Float32 => each(out, array.as_primitive::<Float32Type>().iter(), text, debug),
        DataType::Float64 => each(out, array.as_primitive::<Float64Type>().iter(), text, debug),
        DataType::Date32 => each(
            out,
            array.as_primitive::<Date32Type>().iter(),
            text,
            |t, v| {
                if let Some(d) = as_date::<Date32Type>(v.into()) {
                    display(t, d);
                }
            },
        ),
        DataType::Date64 => each(
            out,
            array.as_primitive::<Date64Type>().iter(),
            text,
            |t, v| {
                if let Some(d) = as_date::<Date64Type>(v) {
                    display(t, d);
                }
            },
        ),
        DataType::Timestamp(TimeUnit::Second, _) => {
            timestamps::<TimestampSecondType>(array, out, text)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            timestamps::<TimestampMillisecondType>(array, out, text)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            timestamps::<TimestampMicrosecondType>(array, out, text)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            timestamps::<TimestampNanosecondType>(array, out, text)
        }
        DataType::Decimal32(p, s) => decimals::<Decimal32Type>(array, out, text, *p, *s),
        DataType::Decimal64(p, s) => decimals::<Decimal64Type>(array, out, text, *p, *s),
        DataType::Decimal128(p, s) => decimals::<Decimal128Type>(array, out, text, *p, *s),
        DataType::Decimal256(p, s) => decimals::<Decimal256Type>(array, out, text, *p, *s),
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_any_dictionary();
            let values = dictionary.values();
            let mut value_texts = StringChunkedBuilder::new("values".into(), values.len());
            append_text(values.as_ref(), &mut value_texts, text)?;
            let value_texts = value_texts.finish();
            let keys = dictionary.keys();
            for (i, key) in dictionary.normalized_keys().into_iter().enumerate() {
                match value_texts.get(key).filter(|_| keys.is_valid(i)) {
                    Some(v) => out.append_value(v),
                    None => out.append_null(),
                }
            }
        }
        other => return Err(type_name(other)),
    }
    Ok(())
}
