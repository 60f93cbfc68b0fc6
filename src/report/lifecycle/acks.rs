//! Report stage: the acknowledgement file, drift an analyst has looked at and
//! accepted for now (`[report] acknowledgements` in the job file).
//!
//! ```toml
//! [[ack]]
//! drift_id = "3f2a9c0d1e4b5a67"     # from the report (drift.csv, report.html)
//! reason = "Vendor merger: the ERP keeps the old vendor id until March"
//! author = "maria@example.com"
//! expires = 2027-03-31              # optional; the last day the acknowledgement holds
//! values_hash = "0c1d2e3f4a5b6c7d"  # optional; see below
//! ```
//!
//! An acknowledged row is reported as `acknowledged` and not counted as open.
//! It is open again when the acknowledgement expires (after its `expires` day,
//! in the run's date) or when the row's values change: with `values_hash`, when
//! the row's `values_hash` (SpotDraft value and ERP value) differs from it;
//! without, when it differs from the values the row had the first run the
//! acknowledgement applied to (kept in the row's `acknowledged_values_hash`
//! and carried from run to run).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One acknowledged drift identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// Why the drift is accepted for now.
    pub reason: String,
    /// Who accepted it.
    pub author: String,
    /// The last day it holds; `None`: until removed.
    pub expires: Option<chrono::NaiveDate>,
    /// The row values it was given for; `None`: those of the first run it applied to.
    pub values_hash: Option<String>,
}

impl Acknowledgement {
    /// True when it still holds on `day`.
    pub fn holds_on(&self, day: chrono::NaiveDate) -> bool {
        self.expires.is_none_or(|e| day <= e)
    }
}

/// The acknowledgement file's entries, by `drift_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acknowledgements(pub BTreeMap<String, Acknowledgement>);

/// An acknowledgement file that cannot be used. Names the file and the entry or line.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// The file could not be read.
    #[error("acknowledgement file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys (the message names the line).
    #[error("acknowledgement file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// An entry has a missing or invalid value.
    #[error("acknowledgement file {}: ack[{index}] (line {line}): {key}: {reason}", path.display())]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry, counted from 1.
        index: usize,
        /// The line its `[[ack]]` header is on.
        line: usize,
        /// The key at fault.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    ack: Vec<RawAck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAck {
    drift_id: Option<String>,
    reason: Option<String>,
    author: Option<String>,
    expires: Option<toml::Value>,
    values_hash: Option<String>,
}

/// Reads and checks the acknowledgement file at `path`.
pub fn load_acknowledgements(path: &Path) -> Result<Acknowledgements, AckError> {
    let text = std::fs::read_to_string(path).map_err(|source| AckError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_acknowledgements(path, &text)
}

/// Parses the text of an acknowledgement file (`path` names it in errors).
pub fn parse_acknowledgements(path: &Path, text: &str) -> Result<Acknowledgements, AckError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| AckError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    let headers: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[ack]]"))
        .map(|(i, _)| i + 1)
        .collect();
    let mut out = BTreeMap::new();
    let mut first_at: BTreeMap<String, usize> = BTreeMap::new();
    for (i, a) in raw.ack.into_iter().enumerate() {
        let index = i + 1;
        let err = |key: &'static str, reason: String| AckError::Entry {
            path: path.to_path_buf(),
            index,
            line: headers.get(i).copied().unwrap_or(0),
            key,
            reason,
        };
        let required = |value: Option<String>, key: &'static str| {
            value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err(key, "required, and not empty".into()))
        };
        let id = required(a.drift_id, "drift_id")?;
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(
                "drift_id",
                format!("{id:?} is not a drift id (16 hex digits, as in the report)"),
            ));
        }
        let id = id.to_ascii_lowercase();
        if let Some(first) = first_at.insert(id.clone(), index) {
            return Err(err(
                "drift_id",
                format!("{id} is already acknowledged by ack[{first}]"),
            ));
        }
        let expires = match a.expires {
            None => None,
            Some(v) => Some(parse_day(&v).ok_or_else(|| {
                err(
                    "expires",
                    format!("{v} is not a date (2027-03-31 or \"2027-03-31\")"),
                )
            })?),
        };
        let ack = Acknowledgement {
            reason: required(a.reason, "reason")?,
            author: required(a.author, "author")?,
            expires,
            values_hash: a.values_hash.map(|h| h.trim().to_ascii_lowercase()),
        };
        out.insert(id, ack);
    }
    Ok(Acknowledgements(out))
}

fn parse_day(v: &toml::Value) -> Option<chrono::NaiveDate> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) if d.time.is_none() => d.to_string(),
        _ => return None,
    };
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "acks.toml";

    #[test]
    fn reads_entries_with_optional_expiry() {
        let text = "[[ack]]\ndrift_id = \"00112233AABBCCDD\"\nreason = \"known\"\nauthor = \"ann\"\nexpires = 2027-03-31\n\n\
                    [[ack]]\ndrift_id = \"0011223344556677\"\nreason = \"r\"\nauthor = \"bo\"\nexpires = \"2027-01-02\"\nvalues_hash = \"ABCD\"\n";
        let acks = parse_acknowledgements(Path::new(FILE), text).unwrap();
        let a = &acks.0["00112233aabbccdd"];
        assert_eq!(a.expires, "2027-03-31".parse().ok());
        assert!(a.holds_on("2027-03-31".parse().unwrap()));
        assert!(!a.holds_on("2027-04-01".parse().unwrap()));
        assert_eq!(
            acks.0["0011223344556677"].values_hash.as_deref(),
            Some("abcd")
        );
    }

    #[test]
    fn errors_name_the_file_the_entry_its_line_and_the_key() {
        let text =
            "[[ack]]\ndrift_id = \"00112233aabbccdd\"\nreason = \"known\"\nauthor = \"ann\"\n\n\
                    [[ack]]\ndrift_id = \"0011223344556677\"\nreason = \" \"\nauthor = \"bo\"\n";
        let e = parse_acknowledgements(Path::new(FILE), text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "acknowledgement file acks.toml: ack[2] (line 6): reason: required, and not empty"
        );
        let e = parse_acknowledgements(Path::new(FILE), "[[ack]]\ndrift_id = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ack[1] (line 1): drift_id: \"x\" is not a drift id"),
            "{e}"
        );
        let e = parse_acknowledgements(Path::new(FILE), "[[ack]]\ndrift_id = \"00112233aabbccdd\"\nreason = \"r\"\nauthor = \"a\"\nexpires = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expires: \"soon\" is not a date"), "{e}");
        let e = parse_acknowledgements(Path::new(FILE), "[[ack]]\nreasn = \"r\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("acks.toml") && e.contains("line 2") && e.contains("reasn"),
            "{e}"
        );
    }
}
