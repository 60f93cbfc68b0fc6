//! Reconciliation: typed field comparison, one Polars expression per compared field.

use super::normalize::{
    decimal_text, normalize_key, null_str, parse_date, parse_number_of, trimmed, with_minor_units,
};
use super::spec::CompareKind;
use polars::prelude::*;

/// Adds the boolean column `out` to `lf`: true where the SpotDraft value in
/// column `sd` and the ERP value in column `erp` differ under `kind`.
///
/// Null on both sides is equal; null on one side is a mismatch. For numbers,
/// decimals and dates, two non-null values that do not both parse are compared
/// as trimmed text, so `n/a` against `n/a` is equal and `n/a` against `5` is not.
///
/// Work is staged through helper columns (`{out}_*`, dropped at the end) so
/// each parse runs once per value instead of once per use in the expression.
pub fn add_mismatch(
    lf: LazyFrame,
    kind: &CompareKind,
    sd: &str,
    erp: &str,
    out: &str,
) -> LazyFrame {
    let (ts, te) = (format!("{out}_ts"), format!("{out}_te"));
    let (ps, pe) = (format!("{out}_ps"), format!("{out}_pe"));
    let helpers = [ts.clone(), te.clone(), ps.clone(), pe.clone()];
    let staged = |lf: LazyFrame, parse: &dyn Fn(Expr) -> Expr| {
        lf.with_columns([
            trimmed(col(sd)).alias(ts.as_str()),
            trimmed(col(erp)).alias(te.as_str()),
        ])
        .with_columns([
            parse(col(ts.as_str())).alias(ps.as_str()),
            parse(col(te.as_str())).alias(pe.as_str()),
        ])
    };
    let lf = match kind {
        CompareKind::String { normalize } => lf.with_columns([normalize_key(col(sd), normalize)
            .eq_missing(normalize_key(col(erp), normalize))
            .not()
            .alias(out)]),
        CompareKind::Number {
            abs_tolerance,
            rel_tolerance,
        } => {
            let lf = staged(lf, &|t| decimal_text(t));
            let (ds, de) = (col(ps.as_str()), col(pe.as_str()));
            let lf = lf.with_columns([
                parse_number_of(ds, col(ts.as_str())).alias(ps.as_str()),
                parse_number_of(de, col(te.as_str())).alias(pe.as_str()),
            ]);
            let (a, b) = (col(ps.as_str()), col(pe.as_str()));
            let diff = (a.clone() - b.clone()).abs();
            let larger = when(a.clone().abs().gt_eq(b.clone().abs()))
                .then(a.abs())
                .otherwise(b.abs());
            let close = diff
                .clone()
                .lt_eq(lit(*abs_tolerance))
                .or(diff.lt_eq(larger * lit(*rel_tolerance)));
            lf.with_columns([typed_mismatch(&ts, &te, &ps, &pe, close).alias(out)])
        }
        CompareKind::Decimal { scale } => {
            let lf = staged(lf, &|t| decimal_text(t));
            let lf = with_minor_units(lf, &ps, &ts, *scale, &ps);
            let lf = with_minor_units(lf, &pe, &te, *scale, &pe);
            let equal = col(ps.as_str()).eq(col(pe.as_str()));
            lf.with_columns([typed_mismatch(&ts, &te, &ps, &pe, equal).alias(out)])
        }
        CompareKind::Date => {
            let lf = staged(lf, &parse_date);
            let equal = col(ps.as_str()).eq(col(pe.as_str()));
            lf.with_columns([typed_mismatch(&ts, &te, &ps, &pe, equal).alias(out)])
        }
        CompareKind::Enum { values } => {
            let lf = staged(lf, &|t| t.str().to_uppercase());
            let mut mapped = null_str();
            for (from, to) in values.iter().rev() {
                let cond = col(ps.as_str()).eq(lit(from.trim().to_uppercase()));
                mapped = when(cond)
                    .then(lit(to.trim().to_uppercase()))
                    .otherwise(mapped);
            }
            let equal = mapped.eq(col(pe.as_str())).fill_null(lit(false));
            lf.with_columns(
                [present_mismatch(col(ts.as_str()), col(te.as_str()), equal).alias(out)],
            )
        }
    };
    match kind {
        CompareKind::String { .. } => lf,
        _ => lf.drop(cols(helpers)),
    }
}

/// Mismatch for parsed columns `ps`/`pe` of the trimmed texts `ts`/`te`: parsed
/// equality `equal` when both parse, trimmed text equality otherwise.
fn typed_mismatch(ts: &str, te: &str, ps: &str, pe: &str, equal: Expr) -> Expr {
    let (sd, erp) = (col(ts), col(te));
    let equal = when(col(ps).is_not_null().and(col(pe).is_not_null()))
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

    /// Evaluates `add_mismatch` over pairs of (SpotDraft, ERP) values.
    fn differs(kind: &CompareKind, pairs: &[(Option<&str>, Option<&str>)]) -> Vec<bool> {
        let sd: Vec<Option<&str>> = pairs.iter().map(|p| p.0).collect();
        let erp: Vec<Option<&str>> = pairs.iter().map(|p| p.1).collect();
        let df = df!("sd" => sd, "erp" => erp).unwrap();
        let out = add_mismatch(df.lazy(), kind, "sd", "erp", "m")
            .collect()
            .unwrap();
        assert_eq!(out.width(), 3, "helper columns are dropped");
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
