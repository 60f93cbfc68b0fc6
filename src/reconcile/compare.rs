//! Reconciliation: typed field comparison, one Polars expression per compared field.

use super::normalize::{minor_units, normalize_key, parse_date, parse_number, trimmed};
use super::spec::CompareKind;
use polars::prelude::*;

/// True where the SpotDraft value `sd` and the ERP value `erp` differ under `kind`.
///
/// Null on both sides is equal; null on one side is a mismatch. For numbers,
/// decimals and dates, two non-null values that do not both parse are compared
/// as trimmed text, so `n/a` against `n/a` is equal and `n/a` against `5` is not.
pub fn mismatch(kind: &CompareKind, sd: Expr, erp: Expr) -> Expr {
    match kind {
        CompareKind::String { normalize } => normalize_key(sd, normalize)
            .eq_missing(normalize_key(erp, normalize))
            .not(),
        CompareKind::Number {
            abs_tolerance,
            rel_tolerance,
        } => {
            let (a, b) = (parse_number(sd.clone()), parse_number(erp.clone()));
            let diff = (a.clone() - b.clone()).abs();
            let larger = when(a.clone().abs().gt_eq(b.clone().abs()))
                .then(a.clone().abs())
                .otherwise(b.clone().abs());
            let close = diff
                .clone()
                .lt_eq(lit(*abs_tolerance))
                .or(diff.lt_eq(larger * lit(*rel_tolerance)));
            typed_mismatch(sd, erp, a, b, close)
        }
        CompareKind::Decimal { scale } => {
            let (a, b) = (
                minor_units(sd.clone(), *scale),
                minor_units(erp.clone(), *scale),
            );
            let equal = a.clone().eq(b.clone());
            typed_mismatch(sd, erp, a, b, equal)
        }
        CompareKind::Date => {
            let (a, b) = (parse_date(sd.clone()), parse_date(erp.clone()));
            let equal = a.clone().eq(b.clone());
            typed_mismatch(sd, erp, a, b, equal)
        }
        CompareKind::Enum { values } => {
            let sd_text = trimmed(sd).str().to_uppercase();
            let erp_text = trimmed(erp).str().to_uppercase();
            let mut mapped = super::normalize::null_str();
            for (from, to) in values.iter().rev() {
                let cond = sd_text.clone().eq(lit(from.trim().to_uppercase()));
                mapped = when(cond)
                    .then(lit(to.trim().to_uppercase()))
                    .otherwise(mapped);
            }
            let equal = mapped.eq(erp_text.clone()).fill_null(lit(false));
            present_mismatch(sd_text, erp_text, equal)
        }
    }
}

/// Mismatch for parsed values `a`/`b` of the texts `sd`/`erp`: parsed equality
/// `equal` when both parse, trimmed text equality otherwise.
fn typed_mismatch(sd: Expr, erp: Expr, a: Expr, b: Expr, equal: Expr) -> Expr {
    let (sd, erp) = (trimmed(sd), trimmed(erp));
    let equal = when(a.is_not_null().and(b.is_not_null()))
        .then(equal)
        .otherwise(sd.clone().eq(erp.clone()))
        .fill_null(lit(false));
    present_mismatch(sd, erp, equal)
}

/// Both absent is equal, one absent is a mismatch, both present is `!equal`.
fn present_mismatch(sd: Expr, erp: Expr, equal: Expr) -> Expr {
    let (sd_some, erp_some) = (sd.is_not_null(), erp.is_not_null());
    let same =
        (sd_some.clone().not().and(erp_some.clone().not())).or(sd_some.and(erp_some).and(equal));
    same.not()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::spec::Normalize;
    use std::collections::BTreeMap;

    /// Evaluates `mismatch` over pairs of (SpotDraft, ERP) values.
    fn differs(kind: &CompareKind, pairs: &[(Option<&str>, Option<&str>)]) -> Vec<bool> {
        let sd: Vec<Option<&str>> = pairs.iter().map(|p| p.0).collect();
        let erp: Vec<Option<&str>> = pairs.iter().map(|p| p.1).collect();
        let df = df!("sd" => sd, "erp" => erp).unwrap();
        let out = df
            .lazy()
            .select([mismatch(kind, col("sd"), col("erp")).alias("m")])
            .collect()
            .unwrap();
        out.column("m")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .map(|v| v.expect("never null"))
            .collect()
    }

    #[test]
    fn string_compare_normalizes_and_handles_nulls() {
        let kind = CompareKind::String {
            normalize: vec![Normalize::Trim, Normalize::Upper],
        };
        let got = differs(
            &kind,
            &[
                (Some(" v-1 "), Some("V-1")),
                (Some("V-1"), Some("V-2")),
                (None, None),
                (Some(""), None),
                (Some("V-1"), None),
                (None, Some("V-1")),
            ],
        );
        assert_eq!(got, [false, true, false, false, true, true]);
    }

    #[test]
    fn number_tolerance_edges_are_inclusive() {
        let abs = CompareKind::Number {
            abs_tolerance: 0.5,
            rel_tolerance: 0.0,
        };
        let got = differs(
            &abs,
            &[
                (Some("100"), Some("100.5")),
                (Some("100"), Some("100.75")),
                (Some("1e2"), Some("100")),
            ],
        );
        assert_eq!(got, [false, true, false]);
        let rel = CompareKind::Number {
            abs_tolerance: 0.0,
            rel_tolerance: 0.01,
        };
        let got = differs(
            &rel,
            &[
                (Some("200"), Some("198")),
                (Some("200"), Some("197.9")),
                (Some("-200"), Some("-198")),
            ],
        );
        assert_eq!(got, [false, true, false]);
        let got = differs(
            &rel,
            &[
                (Some("n/a"), Some("n/a")),
                (Some("n/a"), Some("5")),
                (None, Some("5")),
            ],
        );
        assert_eq!(got, [false, true, true]);
    }

    #[test]
    fn decimal_compares_rounded_minor_units() {
        let kind = CompareKind::Decimal { scale: 2 };
        let got = differs(
            &kind,
            &[
                (Some("12500.5"), Some("12500.50")),
                (Some("12500.004"), Some("12500.00")),
                (Some("12500.00"), Some("12500.01")),
                (Some("1,250.5"), Some("1250.50")),
                (Some("-3"), Some("-3.00")),
                (Some("3"), Some("-3")),
                (None, None),
                (None, Some("0")),
            ],
        );
        assert_eq!(got, [false, false, true, false, false, true, false, true]);
    }

    #[test]
    fn date_compares_at_day_precision() {
        let got = differs(
            &CompareKind::Date,
            &[
                (Some("2026-03-01T17:45:00Z"), Some("2026-03-01")),
                (Some("2026-03-01"), Some("2026-03-02")),
                (Some("2026-03-01 00:00:00"), Some(" 2026-03-01 ")),
                (Some("soon"), Some("2026-03-01")),
                (None, Some("2026-03-01")),
            ],
        );
        assert_eq!(got, [false, true, false, true, true]);
    }

    #[test]
    fn enum_maps_case_insensitively_and_unmapped_is_mismatch() {
        let values = BTreeMap::from([
            ("EXECUTED".to_string(), "ACTIVE".to_string()),
            ("SIGN".to_string(), "PENDING_SIGNATURE".to_string()),
        ]);
        let kind = CompareKind::Enum { values };
        let got = differs(
            &kind,
            &[
                (Some("EXECUTED"), Some("active")),
                (Some(" executed "), Some("ACTIVE")),
                (Some("SIGN"), Some("ACTIVE")),
                (Some("DRAFT"), Some("DRAFT")),
                (None, None),
                (Some("EXECUTED"), None),
            ],
        );
        assert_eq!(got, [false, false, true, true, false, true]);
    }
}
