//! Fixture generator, output: files written under a temporary name and renamed
//! when complete, CSV cells, and the column-wise builders of the Parquet frames.

use super::GenError;
use crate::sandbox::dataset::{ErpRecord, FixtureContract, ERP_EXTRACT_COLUMNS};
use crate::spotdraft::model::value_text;
use polars::prelude::*;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file written under `.<name>.partial` and renamed to its name by [`PendingFile::commit`].
/// Dropped without commit, the partial file is removed.
pub(crate) struct PendingFile {
    path: PathBuf,
    partial: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl PendingFile {
    /// Creates the partial file for `path`.
    pub(crate) fn create(path: PathBuf) -> Result<PendingFile, GenError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = path.with_file_name(format!(".{name}.partial"));
        let file = File::create(&partial).map_err(|source| GenError::Write {
            path: partial.clone(),
            source,
        })?;
        Ok(PendingFile {
            path,
            partial,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The buffered writer.
    pub(crate) fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer
            .as_mut()
            .expect("writer is present until commit")
    }

    /// Writes all of `bytes`.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), GenError> {
        let path = self.path.clone();
        self.writer()
            .write_all(bytes)
            .map_err(|source| GenError::Write { path, source })
    }

    /// The final path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file to its final name.
    pub(crate) fn commit(mut self) -> Result<(), GenError> {
        let writer = self.writer.take().expect("commit runs once");
        let err = |source| GenError::Write {
            path: self.path.clone(),
            source,
        };
        let file = writer.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&self.partial, &self.path).map_err(err)
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Writes `bytes` to `path` through a partial file, without waiting for the disk
/// (documents are many and small).
pub(crate) fn write_whole(path: PathBuf, bytes: &[u8]) -> Result<(), GenError> {
    let partial = partial_path(&path);
    std::fs::write(&partial, bytes).map_err(|source| GenError::Write {
        path: partial.clone(),
        source,
    })?;
    std::fs::rename(&partial, &path).map_err(|source| GenError::Write { path, source })
}

/// `.<name>.partial` beside `path`.
fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// One CSV cell: quoted when it holds a separator, quote, line break or outer space.
pub(crate) fn csv_cell(out: &mut String, value: Option<&str>) {
    let v = value.unwrap_or("");
    let quote = v.contains([',', '"', '\n', '\r']) || v.starts_with(' ') || v.ends_with(' ');
    if quote {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// The record's values in [`ERP_EXTRACT_COLUMNS`] order; an empty id is null.
pub(crate) fn extract_values(r: &ErpRecord) -> [Option<&str>; 11] {
    let id = (!r.erp_record_id.is_empty()).then_some(r.erp_record_id.as_str());
    [
        id,
        r.spotdraft_contract_id.as_deref(),
        r.vendor_id.as_deref(),
        r.po_number.as_deref(),
        r.legal_entity_id.as_deref(),
        r.status.as_deref(),
        r.amount.as_deref(),
        r.currency.as_deref(),
        r.effective_date.as_deref(),
        r.expiry_date.as_deref(),
        r.document_sha256.as_deref(),
    ]
}

/// The extract's CSV header line.
pub(crate) fn extract_header() -> String {
    let names: Vec<&str> = ERP_EXTRACT_COLUMNS.iter().map(|(_, col)| *col).collect();
    format!("{}\n", names.join(","))
}

/// One CSV line of the extract.
pub(crate) fn extract_line(r: &ErpRecord) -> String {
    let mut line = String::with_capacity(160);
    for (i, v) in extract_values(r).into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        csv_cell(&mut line, v);
    }
    line.push('\n');
    line
}

/// Text columns built row by row.
pub(crate) struct TextColumns {
    builders: Vec<StringChunkedBuilder>,
    rows: usize,
}

impl TextColumns {
    /// Empty columns with these names.
    pub(crate) fn new(names: &[&str]) -> TextColumns {
        TextColumns {
            builders: names
                .iter()
                .map(|n| StringChunkedBuilder::new((*n).into(), 1024))
                .collect(),
            rows: 0,
        }
    }

    /// Appends one row; `values` has one entry per column.
    pub(crate) fn push(&mut self, values: &[Option<&str>]) {
        debug_assert_eq!(values.len(), self.builders.len());
        for (b, v) in self.builders.iter_mut().zip(values) {
            b.append_option(*v);
        }
        self.rows += 1;
    }

    /// The columns, in order.
    pub(crate) fn finish(self) -> (usize, Vec<Column>) {
        (
            self.rows,
            self.builders
                .into_iter()
                .map(|b| b.finish().into_series().into_column())
                .collect(),
        )
    }
}

/// The ERP extract frame, with ERP-style column names.
pub(crate) fn extract_columns() -> TextColumns {
    let names: Vec<&str> = ERP_EXTRACT_COLUMNS.iter().map(|(_, col)| *col).collect();
    TextColumns::new(&names)
}

/// Snapshot columns after `id` and `contract_num`, in order.
pub(crate) const SNAPSHOT_TEXT_COLUMNS: [&str; 15] = [
    "contract_name",
    "contract_status",
    "counter_party_name",
    "contract_type_name",
    "created",
    "external_metadata.id",
    "external_metadata.record_data.vendor_id",
    "external_metadata.record_data.po_number",
    "external_metadata.record_data.legal_entity_id",
    "key_pointers.contract_value",
    "key_pointers.currency",
    "key_pointers.effective_date",
    "key_pointers.expiry_date",
    "document_sha256",
    "deleted_at",
];

/// The contract snapshot the ingestion stage would produce, built column-wise.
pub(crate) struct SnapshotColumns {
    ids: StringChunkedBuilder,
    numbers: Vec<Option<i64>>,
    text: TextColumns,
}

impl SnapshotColumns {
    /// Empty snapshot columns.
    pub(crate) fn new() -> SnapshotColumns {
        SnapshotColumns {
            ids: StringChunkedBuilder::new("id".into(), 1024),
            numbers: Vec::new(),
            text: TextColumns::new(&SNAPSHOT_TEXT_COLUMNS),
        }
    }

    /// Appends one contract; `sha` is its executed document's checksum.
    pub(crate) fn push(&mut self, fc: &FixtureContract, sha: Option<&str>) {
        let c = &fc.contract;
        self.ids.append_value(c.id.composite());
        self.numbers.push(c.id.number());
        let rd = |k: &str| c.external_metadata.record_data.get(k).and_then(value_text);
        let kp = |k: &str| {
            fc.key_pointers
                .iter()
                .find(|p| p.field_name == k)
                .and_then(|p| value_text(&p.value))
        };
        let owned = [
            rd("vendor_id"),
            rd("po_number"),
            rd("legal_entity_id"),
            kp("contract_value"),
            kp("currency"),
            kp("effective_date"),
            kp("expiry_date"),
        ];
        let o = |i: usize| owned[i].as_deref();
        self.text.push(&[
            Some(c.contract_name.as_str()),
            Some(c.contract_status.as_str()),
            Some(c.counter_party_name.as_str()),
            Some(c.contract_type_name.as_str()),
            Some(c.created.as_str()),
            c.external_metadata.id.as_deref(),
            o(0),
            o(1),
            o(2),
            o(3),
            o(4),
            o(5),
            o(6),
            sha,
            None,
        ]);
    }

    /// The frame: `id`, `contract_num` (Int64), then [`SNAPSHOT_TEXT_COLUMNS`].
    pub(crate) fn finish(self) -> PolarsResult<DataFrame> {
        let (rows, text) = self.text.finish();
        let mut cols = vec![
            self.ids.finish().into_series().into_column(),
            Series::new("contract_num".into(), self.numbers).into_column(),
        ];
        cols.extend(text);
        DataFrame::new(rows, cols)
    }
}

/// Writes `df` as Parquet to `path` through a partial file.
pub(crate) fn write_parquet(path: PathBuf, mut df: DataFrame) -> Result<(), GenError> {
    let mut f = PendingFile::create(path)?;
    let path = f.path().to_path_buf();
    ParquetWriter::new(f.writer())
        .finish(&mut df)
        .map_err(|source| GenError::Parquet { path, source })?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_with_separators_or_outer_spaces_are_quoted() {
        let mut s = String::new();
        for v in [
            Some("12,5x"),
            Some(" ERP-1 "),
            Some("a\"b"),
            None,
            Some("plain"),
        ] {
            csv_cell(&mut s, v);
            s.push('|');
        }
        assert_eq!(s, "\"12,5x\"|\" ERP-1 \"|\"a\"\"b\"||plain|");
    }

    #[test]
    fn dropped_pending_file_leaves_nothing_under_either_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        {
            let mut f = PendingFile::create(path.clone()).unwrap();
            f.write(b"half").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_whole(path.clone(), b"whole").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
    }
}
