//! Integration tests: an independent reading of the drift rules (the module doc
//! of `src/reconcile/spec.rs`), written from the dataset files alone, that the
//! generator's `expected_drift.csv` must agree with. It shares no code with the
//! engine or the generator.

use chrono::NaiveDate;
use contract_recon::sandbox::dataset::{files, ErpRecord, ExpectedDrift, FixtureContract};
use contract_recon::spotdraft::model::value_text;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Contract statuses the demo job reconciles.
pub const IN_SCOPE: [&str; 4] = ["SIGN", "EXECUTED", "ON_HOLD", "VOIDED"];

pub fn key(v: Option<&str>) -> Option<String> {
    v.map(|s| s.trim().to_uppercase()).filter(|s| !s.is_empty())
}

pub fn po_key(v: Option<&str>) -> Option<String> {
    key(v).map(|s| match s.trim_start_matches('0') {
        "" => "0".to_string(),
        rest => rest.to_string(),
    })
}

pub fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// An amount the extract accepts: optional sign, digits with an optional `.`
/// fraction, or `,` thousands separators in groups of three before it.
pub fn readable_amount(v: &str) -> Option<f64> {
    let t = v.trim();
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let groups: Vec<&str> = int.split(',').collect();
    let int_ok = match groups.as_slice() {
        [one] => all_digits(one) && !(one.is_empty() && frac.is_empty()),
        [first, rest @ ..] => {
            (1..=3).contains(&first.len())
                && all_digits(first)
                && rest.iter().all(|g| g.len() == 3 && all_digits(g))
        }
        [] => false,
    };
    (int_ok && all_digits(frac) && !body.is_empty())
        .then(|| t.replace(',', "").parse().ok())
        .flatten()
}

/// A date the extract accepts: `YYYY-MM-DD`, alone or before `T` or a space.
pub fn readable_date(v: &str) -> Option<NaiveDate> {
    let t = v.trim();
    let (day, rest) = t.split_at_checked(10)?;
    let shape = day.bytes().enumerate().all(|(i, b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    let rest_ok = rest.is_empty() || rest.starts_with(['T', ' ']);
    (shape && rest_ok)
        .then(|| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
        .flatten()
}

pub fn cents(v: Option<&str>) -> Option<i64> {
    v.map(|s| (readable_amount(s).expect("amount parses") * 100.0).round() as i64)
}

pub fn date(v: Option<&str>) -> Option<NaiveDate> {
    v.map(|s| readable_date(s).expect("date parses"))
}

/// The record's typed values the extract cannot read, by field name.
pub fn unusable_fields(r: &ErpRecord) -> Vec<&'static str> {
    let dates = [
        ("effective_date", &r.effective_date),
        ("expiry_date", &r.expiry_date),
    ];
    let bad_dates = dates
        .into_iter()
        .filter(|(_, v)| v.as_deref().is_some_and(|v| readable_date(v).is_none()));
    let bad_amount = r
        .amount
        .as_deref()
        .is_some_and(|v| readable_amount(v).is_none())
        .then_some(("amount", &r.amount));
    bad_dates.chain(bad_amount).map(|(f, _)| f).collect()
}

pub fn erp_status(sd: &str) -> &'static str {
    match sd {
        "EXECUTED" => "ACTIVE",
        "SIGN" => "PENDING_SIGNATURE",
        "ON_HOLD" => "ON_HOLD",
        "VOIDED" => "CANCELLED",
        other => panic!("out of scope status {other}"),
    }
}

pub fn kp(c: &FixtureContract, name: &str) -> Option<String> {
    c.key_pointers
        .iter()
        .find(|k| k.field_name == name)
        .and_then(|k| value_text(&k.value))
}

pub fn rd(c: &FixtureContract, name: &str) -> Option<String> {
    c.contract
        .external_metadata
        .record_data
        .get(name)
        .and_then(value_text)
}

/// Compared fields that differ between a contract and a record, under their
/// types; a field whose ERP value is unusable is not compared.
pub fn differing_fields(c: &FixtureContract, r: &ErpRecord) -> Vec<&'static str> {
    let skip = unusable_fields(r);
    let checks: [(&str, &dyn Fn() -> bool); 7] = [
        ("vendor_id", &|| {
            key(rd(c, "vendor_id").as_deref()) == key(r.vendor_id.as_deref())
        }),
        ("po_number", &|| {
            po_key(rd(c, "po_number").as_deref()) == po_key(r.po_number.as_deref())
        }),
        ("status", &|| {
            Some(erp_status(&c.contract.contract_status)) == key(r.status.as_deref()).as_deref()
        }),
        ("amount", &|| {
            cents(kp(c, "contract_value").as_deref()) == cents(r.amount.as_deref())
        }),
        ("currency", &|| {
            key(kp(c, "currency").as_deref()) == key(r.currency.as_deref())
        }),
        ("effective_date", &|| {
            date(kp(c, "effective_date").as_deref()) == date(r.effective_date.as_deref())
        }),
        ("expiry_date", &|| {
            date(kp(c, "expiry_date").as_deref()) == date(r.expiry_date.as_deref())
        }),
    ];
    checks
        .iter()
        .filter(|(f, eq)| !skip.contains(f) && !eq())
        .map(|(f, _)| *f)
        .collect()
}

/// Drift rows derived from the files alone, by the spec's rules.
pub fn derive_drift(
    dir: &Path,
    cs: &[FixtureContract],
    rs: &[ErpRecord],
) -> BTreeSet<ExpectedDrift> {
    let row = |k: &str, c: Option<&str>, r: Option<&str>, f: Option<&str>| ExpectedDrift {
        drift_kind: k.into(),
        contract_id: c.map(str::to_string),
        erp_record_id: r.map(str::to_string),
        field: f.map(str::to_string),
    };
    let scope: Vec<usize> = (0..cs.len())
        .filter(|&i| IN_SCOPE.contains(&cs[i].contract.contract_status.as_str()))
        .collect();
    let mut by_id: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut by_ref: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut by_fallback: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (j, r) in rs.iter().enumerate() {
        if let Some(k) = key(Some(&r.erp_record_id)) {
            by_id.entry(k).or_default().push(j);
        }
        if let Some(k) = key(r.spotdraft_contract_id.as_deref()) {
            by_ref.entry(k).or_default().push(j);
        }
        if let (Some(v), Some(p)) = (key(r.vendor_id.as_deref()), po_key(r.po_number.as_deref())) {
            by_fallback.entry((v, p)).or_default().push(j);
        }
    }
    let mut links: BTreeSet<(usize, usize)> = BTreeSet::new();
    for &i in &scope {
        let c = &cs[i].contract;
        let id_hits = key(c.external_metadata.id.as_deref()).and_then(|k| by_id.get(&k));
        let ref_hits = [
            c.id.composite().to_string(),
            c.id.number().unwrap().to_string(),
        ]
        .map(|k| by_ref.get(&k));
        for hits in [id_hits].into_iter().chain(ref_hits).flatten() {
            links.extend(hits.iter().map(|&j| (i, j)));
        }
    }
    let linked_c: BTreeSet<usize> = links.iter().map(|l| l.0).collect();
    let linked_r: BTreeSet<usize> = links.iter().map(|l| l.1).collect();
    for &i in scope.iter().filter(|i| !linked_c.contains(i)) {
        let c = &cs[i];
        if let (Some(v), Some(p)) = (
            key(rd(c, "vendor_id").as_deref()),
            po_key(rd(c, "po_number").as_deref()),
        ) {
            for &j in by_fallback
                .get(&(v, p))
                .into_iter()
                .flatten()
                .filter(|j| !linked_r.contains(j))
            {
                links.insert((i, j));
            }
        }
    }
    let mut count_c: BTreeMap<usize, usize> = BTreeMap::new();
    let mut count_r: BTreeMap<usize, usize> = BTreeMap::new();
    for &(i, j) in &links {
        *count_c.entry(i).or_default() += 1;
        *count_r.entry(j).or_default() += 1;
    }
    let per_c = |i: usize| count_c.get(&i).copied().unwrap_or(0);
    let per_r = |j: usize| count_r.get(&j).copied().unwrap_or(0);
    let mut out = BTreeSet::new();
    let ids: BTreeSet<String> = rs
        .iter()
        .filter_map(|r| key(Some(&r.erp_record_id)))
        .collect();
    for &i in &scope {
        let c = &cs[i];
        let cid = Some(c.contract.id.composite());
        match key(c.contract.external_metadata.id.as_deref()) {
            None => {
                let only = (per_c(i) == 1).then(|| links.iter().find(|l| l.0 == i).unwrap().1);
                out.insert(row(
                    "unlinked_contract",
                    cid,
                    only.map(|j| rs[j].erp_record_id.as_str()),
                    None,
                ));
            }
            Some(id) => {
                // Records naming the contract back under another id contradict it.
                let named = c.contract.external_metadata.id.as_deref();
                let back_names = [
                    c.contract.id.composite().to_string(),
                    c.contract.id.number().unwrap().to_string(),
                ];
                let others: Vec<usize> = rs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        key(r.spotdraft_contract_id.as_deref())
                            .is_some_and(|b| back_names.contains(&b))
                            && key(Some(&r.erp_record_id)).as_ref() != Some(&id)
                    })
                    .map(|(j, _)| j)
                    .collect();
                for _ in &others {
                    out.insert(row("link_conflict", cid, named, None));
                }
                // The conflict says which id to write when the named record is
                // absent and exactly one unclaimed record names the contract.
                let replaced = matches!(others.as_slice(), [j] if per_r(*j) == 1);
                if !ids.contains(&id) && !replaced {
                    out.insert(row("missing_in_erp", cid, named, None));
                }
            }
        }
    }
    let numbers: BTreeSet<String> = cs
        .iter()
        .flat_map(|c| {
            [
                c.contract.id.composite().to_string(),
                c.contract.id.number().unwrap().to_string(),
            ]
        })
        .collect();
    for r in rs {
        if key(r.spotdraft_contract_id.as_deref()).is_some_and(|b| !numbers.contains(&b)) {
            out.insert(row(
                "orphan_erp_record",
                r.spotdraft_contract_id.as_deref(),
                Some(&r.erp_record_id),
                None,
            ));
        }
    }
    for (j, r) in rs.iter().enumerate() {
        let contract = (per_r(j) == 1)
            .then(|| links.iter().find(|l| l.1 == j).unwrap().0)
            .map(|i| cs[i].contract.id.composite());
        for f in unusable_fields(r) {
            out.insert(row(
                "unusable_erp_value",
                contract,
                Some(&r.erp_record_id),
                Some(f),
            ));
        }
    }
    for &(i, j) in &links {
        let (c, r) = (&cs[i], &rs[j]);
        let cid = Some(c.contract.id.composite());
        if per_c(i) > 1 || per_r(j) > 1 {
            out.insert(row("duplicate_link", cid, Some(&r.erp_record_id), None));
            continue;
        }
        for f in differing_fields(c, r) {
            out.insert(row("field_mismatch", cid, Some(&r.erp_record_id), Some(f)));
        }
        if c.contract.contract_status == "EXECUTED" {
            let doc = std::fs::read(
                dir.join(files::DOCUMENTS_DIR)
                    .join(c.document.as_ref().unwrap()),
            )
            .unwrap();
            let sha = hex::encode(Sha256::digest(&doc));
            if r.document_sha256.as_deref().map(str::to_lowercase) != Some(sha) {
                out.insert(row("missing_document", cid, Some(&r.erp_record_id), None));
            }
        }
    }
    out
}
