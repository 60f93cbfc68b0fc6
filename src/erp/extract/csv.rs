//! The CSV reader: record by record (the `csv` crate, RFC 4180 quoting, a
//! UTF-8 BOM skipped, CRLF or LF) from any [`Read`], so a bad row is one
//! reject, never the whole file's failure; [`StreamRead`] feeds it an object
//! store's byte stream as it arrives.

use super::{check_columns, mapped_columns, BadRow, ExtractError, ExtractFormat, RawRows, ROW};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;

/// A blocking [`Read`] over an object store's byte stream: each chunk is
/// awaited on the runtime of `handle` as the parser needs it, so at most one
/// chunk is in memory at a time. For a blocking thread (`spawn_blocking`),
/// never an async one.
pub(super) struct StreamRead {
    handle: tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

/// A [`Read`] that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

impl StreamRead {
    /// Reads `stream` by awaiting its chunks on `handle`.
    pub(super) fn new(
        handle: tokio::runtime::Handle,
        stream: BoxStream<'static, object_store::Result<Bytes>>,
    ) -> StreamRead {
        StreamRead {
            handle,
            stream,
            chunk: Bytes::new(),
        }
    }
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `reader` without a leading UTF-8 BOM.
fn skip_bom<R: Read>(
    mut reader: R,
) -> std::io::Result<std::io::Chain<std::io::Cursor<Vec<u8>>, R>> {
    let mut head = Vec::with_capacity(BOM.len());
    (&mut reader)
        .take(BOM.len() as u64)
        .read_to_end(&mut head)?;
    if head == BOM {
        head.clear();
    }
    Ok(std::io::Cursor::new(head).chain(reader))
}

/// Reads a CSV extract of `size` bytes: each mapped column as text (a field
/// that is empty or only whitespace as null), a `_row` column, the rows that cannot be records, and the
/// number of data rows read. Columns the job does not map are skipped.
pub(super) fn read_csv(
    url: &str,
    reader: impl Read,
    columns: &BTreeMap<String, String>,
    size: u64,
) -> Result<RawRows, ExtractError> {
    let stream_err = |line: u64| {
        move |source: std::io::Error| ExtractError::ReadStream {
            url: url.to_string(),
            line,
            source,
        }
    };
    let csv_err = |line: u64| {
        move |e: csv::Error| {
            if !e.is_io_error() {
                return ExtractError::Parse {
                    url: url.to_string(),
                    format: "CSV",
                    source: e.into(),
                };
            }
            match e.into_kind() {
                csv::ErrorKind::Io(source) => stream_err(line)(source),
                other => ExtractError::Parse {
                    url: url.to_string(),
                    format: "CSV",
                    source: format!("{other:?}").into(),
                },
            }
        }
    };
    let data = skip_bom(Counted {
        inner: reader,
        bytes: 0,
    })
    .map_err(stream_err(0))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(csv_err(0))? {
        return Err(ExtractError::Empty {
            url: url.to_string(),
        });
    }
    let mut names: Vec<String> = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let name = std::str::from_utf8(field).map_err(|e| ExtractError::Header {
            url: url.to_string(),
            problem: format!(
                "column {} is not valid UTF-8 ({}): the extract must be UTF-8",
                i + 1,
                bad_byte(field, &e)
            ),
        })?;
        if let Some(first) = names.iter().position(|n| n == name) {
            return Err(ExtractError::DuplicateColumn {
                url: url.to_string(),
                column: name.to_string(),
                first: first + 1,
                second: i + 1,
            });
        }
        names.push(name.to_string());
    }
    check_columns(url, ExtractFormat::Csv, &names, columns)?;
    // (field position, builder) of each mapped column. Built in place (Arrow
    // string views, short values inline): no allocation per cell.
    let capacity = usize::try_from(size / 64).unwrap_or(0).min(1 << 24);
    let mut kept: Vec<(usize, StringChunkedBuilder)> = mapped_columns(columns)
        .into_iter()
        .map(|name| {
            let at = names.iter().position(|n| n == name).unwrap_or_default();
            (at, StringChunkedBuilder::new(name.into(), capacity))
        })
        .collect();
    let mut rows: Vec<u64> = Vec::with_capacity(capacity);
    let mut bad = Vec::new();
    let mut row = 0u64;
    let mut line = 1u64;
    while reader
        .read_byte_record(&mut record)
        .map_err(csv_err(line))?
    {
        row += 1;
        line = record.position().map_or(line + 1, |p| p.line());
        let lossy_first = || {
            record
                .get(0)
                .map(|f| String::from_utf8_lossy(f).trim().to_string())
                .filter(|f| !f.is_empty())
        };
        if record.len() != names.len() {
            bad.push(BadRow {
                row,
                erp_record_id: lossy_first(),
                reason: format!(
                    "line {line}: {} fields where the header has {}",
                    record.len(),
                    names.len()
                ),
            });
            continue;
        }
        let broken = record.iter().enumerate().find_map(|(i, field)| {
            std::str::from_utf8(field).err().map(|e| {
                format!(
                    "line {line}: {}: not valid UTF-8 ({}); the extract must be UTF-8",
                    names[i],
                    bad_byte(field, &e)
                )
            })
        });
        if let Some(reason) = broken {
            bad.push(BadRow {
                row,
                erp_record_id: lossy_first(),
                reason,
            });
            continue;
        }
        for (at, column) in kept.iter_mut() {
            match std::str::from_utf8(&record[*at]) {
                Ok(text) if !text.trim().is_empty() => column.append_value(text),
                _ => column.append_null(),
            }
        }
        rows.push(row);
    }
    let height = rows.len();
    let mut frame_columns: Vec<Column> = vec![Column::new(ROW.into(), rows)];
    frame_columns.extend(kept.into_iter().map(|(_, b)| b.finish().into_column()));
    let frame = DataFrame::new(height, frame_columns).map_err(|e| ExtractError::Parse {
        url: url.to_string(),
        format: "CSV",
        source: e.into(),
    })?;
    let bytes_fetched = reader.into_inner().into_inner().1.bytes;
    Ok(RawRows {
        frame,
        bad,
        rows_read: row,
        bytes_fetched,
    })
}

/// `byte 0xE9 at offset 4` for a UTF-8 error in `field`.
fn bad_byte(field: &[u8], e: &std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    format!("byte 0x{:02X} at offset {at}", field[at])
}
