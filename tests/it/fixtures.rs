//! Integration tests: fixtures. Generated datasets are deterministic, parse, and
//! their `expected_drift.csv` agrees with an independent reading of the drift rules.

use contract_recon::sandbox::dataset::files::{EXPECTED_REJECTS, SNAPSHOT};
use contract_recon::sandbox::dataset::{
    files, ErpRecord, ExpectedDrift, FixtureContract, ERP_EXTRACT_COLUMNS,
};
use contract_recon::sandbox::gen::{generate, GenOptions, GenSummary};
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::fixture_rules::{
    derive_drift, differing_fields, erp_status, key, kp, po_key, rd, readable_amount,
    readable_date, IN_SCOPE,
};

fn gen(dir: &Path, contracts: u64, seed: u64, snapshot: bool) -> GenSummary {
    let opts = GenOptions {
        snapshot,
        documents: Some(true),
        ..GenOptions::new(contracts, seed, dir)
    };
    generate(&opts).expect("generate")
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn contracts(dir: &Path) -> Vec<FixtureContract> {
    let text = std::fs::read_to_string(dir.join(files::CONTRACTS)).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn erp_records(dir: &Path) -> Vec<ErpRecord> {
    let text = std::fs::read_to_string(dir.join(files::ERP_RECORDS)).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn expected_drift(dir: &Path) -> Vec<ExpectedDrift> {
    let text = std::fs::read_to_string(dir.join(files::EXPECTED_DRIFT)).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("drift_kind,contract_id,erp_record_id,field")
    );
    let cell = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let rows: Vec<ExpectedDrift> = lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            assert_eq!(c.len(), 4, "{l}");
            ExpectedDrift {
                drift_kind: c[0].into(),
                contract_id: cell(c[1]),
                erp_record_id: cell(c[2]),
                field: cell(c[3]),
            }
        })
        .collect();
    assert!(
        rows.windows(2).all(|w| w[0] < w[1]),
        "rows are sorted and distinct"
    );
    rows
}

/// The extract read by Polars with every column as text.
fn read_extract_csv(dir: &Path) -> DataFrame {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(dir.join(files::ERP_EXTRACT_CSV)))
        .unwrap()
        .finish()
        .unwrap()
}

fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn text_col(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

// ---- Tests ----

#[test]
fn same_seed_gives_identical_files_and_another_seed_differs() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    gen(a.path(), 1_200, 7, true);
    gen(b.path(), 1_200, 7, true);
    gen(c.path(), 1_200, 8, true);
    let (ta, tb, tc) = (tree(a.path()), tree(b.path()), tree(c.path()));
    assert!(ta.len() > 8 && ta.contains_key(Path::new(SNAPSHOT)));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, bytes) in &ta {
        assert!(
            tb[name] == *bytes,
            "{} differs between two runs with the same seed",
            name.display()
        );
    }
    for name in [
        files::CONTRACTS,
        files::ERP_EXTRACT_CSV,
        files::EXPECTED_DRIFT,
        files::ERP_EXTRACT_PARQUET,
    ] {
        assert_ne!(
            ta[Path::new(name)],
            tc[Path::new(name)],
            "{name} is the same for another seed"
        );
    }
    assert!(!ta.keys().any(|p| p.to_string_lossy().contains(".partial")));
}

#[test]
fn every_kind_appears_at_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let summary = gen(dir.path(), 4_000, 9, false);
    let cs = contracts(dir.path());
    let in_scope = cs
        .iter()
        .filter(|c| IN_SCOPE.contains(&c.contract.contract_status.as_str()))
        .count() as f64;
    let executed = cs
        .iter()
        .filter(|c| c.contract.contract_status == "EXECUTED")
        .count() as f64;
    let rows = expected_drift(dir.path());
    let contracts_of = |kind: &str| {
        rows.iter()
            .filter(|r| r.drift_kind == kind)
            .map(|r| r.contract_id.clone())
            .collect::<BTreeSet<_>>()
            .len() as f64
    };
    for (kind, pool) in [
        ("unlinked_contract", in_scope),
        ("missing_in_erp", in_scope),
        ("orphan_erp_record", in_scope),
        ("duplicate_link", in_scope),
        ("missing_document", executed),
        ("unusable_erp_value", in_scope),
    ] {
        let rate = contracts_of(kind) / pool;
        assert!((0.007..=0.013).contains(&rate), "{kind}: {rate}");
    }
    for field in [
        "vendor_id",
        "po_number",
        "status",
        "amount",
        "currency",
        "effective_date",
        "expiry_date",
    ] {
        let n = rows
            .iter()
            .filter(|r| r.drift_kind == "field_mismatch" && r.field.as_deref() == Some(field))
            .count() as f64;
        assert!(
            (0.003..=0.007).contains(&(n / in_scope)),
            "{field}: {}",
            n / in_scope
        );
    }
    // Link conflicts: one per duplicate (the second record's back-reference)
    // and one per injected conflict (the contract's named record is absent).
    let conflicts = contracts_of("link_conflict") / in_scope;
    assert!(
        (0.015..=0.025).contains(&conflicts),
        "link_conflict: {conflicts}"
    );
    assert!(rows
        .iter()
        .any(|r| r.drift_kind == "unlinked_contract" && r.erp_record_id.is_none()));
    assert!(rows
        .iter()
        .any(|r| r.drift_kind == "unlinked_contract" && r.erp_record_id.is_some()));
    let by_kind: BTreeMap<String, u64> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.drift_kind.clone()).or_default() += 1;
        m
    });
    assert_eq!(summary.expected_drift, by_kind);
    // Extra rows no contract owns (about 0.2% of contracts), plus the records
    // with an unusable value (about 1% of in-scope contracts).
    let rejects: u64 = summary.rejects.values().sum();
    let unusable_owned = rows
        .iter()
        .filter(|r| r.drift_kind == "unusable_erp_value" && r.contract_id.is_some())
        .count() as f64;
    assert!(
        (0.007..=0.013).contains(&(unusable_owned / in_scope)),
        "{}",
        unusable_owned / in_scope
    );
    assert!(
        (4..=12).contains(&(rejects - unusable_owned as u64)) && summary.rejects.len() == 3,
        "{:?}",
        summary.rejects
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(files::MANIFEST)).unwrap()).unwrap();
    assert_eq!(
        manifest["expected_drift"]["duplicate_link"],
        by_kind["duplicate_link"]
    );
}

#[test]
fn files_parse_and_documents_match_the_erp_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let summary = gen(dir.path(), 600, 3, true);
    let cs = contracts(dir.path());
    let rs = erp_records(dir.path());
    assert_eq!(cs.len(), 600);
    assert_eq!(rs.len() as u64, summary.erp_records);
    let numbers: BTreeSet<i64> = cs.iter().map(|c| c.contract.id.number().unwrap()).collect();
    assert_eq!(
        numbers.len(),
        600,
        "integer parts are unique across T- and H- ids"
    );
    assert_eq!(*numbers.first().unwrap(), 1001);
    for c in &cs {
        let updated = c.contract.last_updated_on.as_deref().unwrap();
        assert!(
            c.contract.created.ends_with('Z') && c.contract.created.as_str() <= updated,
            "{}",
            c.contract.id
        );
        assert!(updated < "2026-11-01T00:00:01Z" && c.contract.created.as_str() >= "2024-11-01");
        assert_eq!(c.key_pointers.len(), 4);
    }
    let with_keys: Vec<_> = cs
        .iter()
        .filter_map(|c| Some((rd(c, "vendor_id")?, po_key(rd(c, "po_number").as_deref())?)))
        .collect();
    let fallback: BTreeSet<_> = with_keys.iter().collect();
    assert!(with_keys.len() > 450);
    assert_eq!(
        fallback.len(),
        with_keys.len(),
        "vendor_id + po_number is unique per contract"
    );

    // Every executed contract has a PDF whose checksum is the clean ERP record's.
    let by_id: BTreeMap<&str, &ErpRecord> =
        rs.iter().map(|r| (r.erp_record_id.as_str(), r)).collect();
    let mut checked = 0;
    for c in cs
        .iter()
        .filter(|c| c.contract.contract_status == "EXECUTED")
    {
        let bytes = std::fs::read(
            dir.path()
                .join("documents")
                .join(c.document.as_ref().unwrap()),
        )
        .unwrap();
        assert!(bytes.starts_with(b"%PDF-") && bytes.len() < 2_000);
        assert!(String::from_utf8_lossy(&bytes).contains(c.contract.id.composite()));
        let sha = hex::encode(Sha256::digest(&bytes));
        if let Some(r) = c
            .contract
            .external_metadata
            .id
            .as_deref()
            .and_then(|id| by_id.get(id))
        {
            if r.document_sha256.as_deref() == Some(sha.as_str()) {
                checked += 1;
            }
        }
    }
    assert!(
        checked > 200,
        "only {checked} executed documents match their ERP checksum"
    );

    // The extract (CSV and Parquet) holds the JSON records plus the reject rows, in order.
    let csv = read_extract_csv(dir.path());
    let parquet = read_parquet(&dir.path().join(files::ERP_EXTRACT_PARQUET));
    assert!(
        csv.equals_missing(&parquet),
        "CSV and Parquet extracts differ"
    );
    let names: Vec<&str> = ERP_EXTRACT_COLUMNS.iter().map(|c| c.1).collect();
    assert_eq!(
        csv.get_column_names()
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        names
    );
    assert_eq!(csv.height() as u64, summary.extract_rows);
    let (ids, dates, expiry, amounts) = (
        text_col(&csv, "RECORD_ID"),
        text_col(&csv, "EFFECTIVE_DATE"),
        text_col(&csv, "EXPIRY_DATE"),
        text_col(&csv, "AMOUNT"),
    );
    let unreadable_date =
        |v: &Option<String>| v.as_deref().is_some_and(|d| readable_date(d).is_none());
    let back_refs = text_col(&csv, "SD_CONTRACT_ID");
    let rejects_text = std::fs::read_to_string(dir.path().join(EXPECTED_REJECTS)).unwrap();
    let mut reject_rows = BTreeSet::new();
    for line in rejects_text.lines().skip(1) {
        let (row, kind) = line.split_once(',').unwrap();
        let i = row.parse::<usize>().unwrap() - 1;
        reject_rows.insert(i);
        match kind {
            "empty_erp_record_id" => {
                assert!(ids[i].is_none() && back_refs[i].is_none(), "row {row}")
            }
            "bad_date" => assert!(unreadable_date(&dates[i]) || unreadable_date(&expiry[i])),
            "bad_amount" => assert!(readable_amount(amounts[i].as_deref().unwrap()).is_none()),
            other => panic!("unknown reason {other}"),
        }
        if kind != "empty_erp_record_id" {
            assert!(ids[i].is_some(), "row {row} has a record id");
        }
    }
    assert!(
        reject_rows.iter().any(|&i| back_refs[i].is_some()),
        "some rejected rows belong to contracts"
    );
    // Every row with a record id is an ERP record, rejected for a value or not.
    let records: Vec<Option<String>> = ids.iter().filter(|id| id.is_some()).cloned().collect();
    assert_eq!(
        records,
        rs.iter()
            .map(|r| Some(r.erp_record_id.clone()))
            .collect::<Vec<_>>()
    );

    let snap = read_parquet(&dir.path().join(SNAPSHOT));
    assert_eq!(snap.height(), 600);
    assert_eq!(
        snap.column("contract_num").unwrap().dtype(),
        &DataType::Int64
    );
    assert_eq!(
        snap.column("document_sha256").unwrap().null_count(),
        600 - summary.documents as usize
    );
    assert_eq!(snap.column("deleted_at").unwrap().null_count(), 600);
}

#[test]
fn expected_drift_agrees_with_an_independent_reading_of_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    gen(dir.path(), 3_000, 21, false);
    let cs = contracts(dir.path());
    let rs = erp_records(dir.path());
    let expected: BTreeSet<ExpectedDrift> = expected_drift(dir.path()).into_iter().collect();
    let derived = derive_drift(dir.path(), &cs, &rs);
    let missing: Vec<_> = expected.difference(&derived).collect();
    let extra: Vec<_> = derived.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "expected but not derived: {missing:?}\nderived but not expected: {extra:?}"
    );

    // Orphans name contracts that do not exist; other kinds name contracts that do.
    let known: BTreeSet<&str> = cs.iter().map(|c| c.contract.id.composite()).collect();
    let records: BTreeSet<&str> = rs.iter().map(|r| r.erp_record_id.as_str()).collect();
    for row in &expected {
        let Some(c) = row.contract_id.as_deref() else {
            // Only a record no contract links to has none.
            assert_eq!(row.drift_kind, "unusable_erp_value", "{row:?}");
            continue;
        };
        assert_eq!(
            known.contains(c),
            row.drift_kind != "orphan_erp_record",
            "{row:?}"
        );
        let r = row.erp_record_id.as_deref();
        if row.drift_kind == "link_conflict" {
            // The id the contract names, present in the extract or not.
            assert!(r.is_some(), "{row:?}");
            continue;
        }
        assert_eq!(
            r.is_some_and(|r| records.contains(r)),
            !matches!(row.drift_kind.as_str(), "missing_in_erp") && r.is_some(),
            "{row:?}"
        );
    }

    // Noise: on pairs without drift, a naive text comparison would still see differences.
    let drifted: BTreeSet<&str> = expected
        .iter()
        .filter_map(|r| r.contract_id.as_deref())
        .collect();
    let by_id: BTreeMap<String, &ErpRecord> = rs
        .iter()
        .map(|r| (key(Some(&r.erp_record_id)).unwrap(), r))
        .collect();
    let (mut pairs, mut raw_differences) = (0, 0);
    for c in cs
        .iter()
        .filter(|c| !drifted.contains(c.contract.id.composite()))
    {
        let Some(r) = key(c.contract.external_metadata.id.as_deref()).and_then(|k| by_id.get(&k))
        else {
            continue;
        };
        pairs += 1;
        assert!(differing_fields(c, r).is_empty());
        let naive = [
            (
                c.contract.external_metadata.id.clone(),
                Some(r.erp_record_id.clone()),
            ),
            (rd(c, "po_number"), r.po_number.clone()),
            (rd(c, "vendor_id"), r.vendor_id.clone()),
            (kp(c, "currency"), r.currency.clone()),
            (kp(c, "effective_date"), r.effective_date.clone()),
            (
                Some(erp_status(&c.contract.contract_status).to_string()),
                r.status.clone(),
            ),
        ];
        raw_differences += usize::from(naive.iter().any(|(a, b)| a != b));
    }
    assert!(
        pairs > 1_500 && raw_differences * 20 > pairs,
        "{raw_differences} noisy of {pairs} clean pairs"
    );
}

#[test]
fn committed_demo_set_is_what_the_generator_writes() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    let dir = tempfile::tempdir().unwrap();
    gen(dir.path(), 300, 42, false);
    let mut committed = tree(&demo);
    assert!(
        committed.remove(Path::new("README.md")).is_some(),
        "fixtures/demo/README.md exists"
    );
    let fresh = tree(dir.path());
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &fresh {
        assert!(
            committed[name] == *bytes,
            "fixtures/demo/{} is stale: run the ignored test regenerate_demo_dataset",
            name.display()
        );
    }
    assert!(fresh.values().map(Vec::len).sum::<usize>() < 2_000_000);
}

#[test]
fn bad_counts_are_refused_with_the_flag_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(&GenOptions::new(0, 1, dir.path())).unwrap_err();
    assert!(err.to_string().contains("--contracts"), "{err}");
}
