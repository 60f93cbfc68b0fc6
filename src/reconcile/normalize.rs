//! Reconciliation: key normalization and value parsing, as Polars expressions.
//!
//! Everything here builds [`Expr`]s; nothing runs row by row in Rust. The
//! extract loader reuses [`parse_date`] and [`decimal_text`] to validate rows,
//! so a value the loader accepts is one the engine can compare.

use super::spec::Normalize;
use polars::prelude::*;

/// A date, or the date part of an ISO date-time (`2026-03-01`, `2026-03-01T10:00:00Z`).
pub const DATE_PATTERN: &str = r"^\d{4}-\d{2}-\d{2}([T ].*)?$";

/// A plain decimal number: optional sign, digits, optional fraction.
pub const DECIMAL_PATTERN: &str = r"^[+-]?(\d+\.?\d*|\.\d+)$";

/// A decimal with `,` thousands separators in groups of three before an optional
/// `.` fraction (`1,234.50`). Anything else with a comma (`1,5`, `12,34`) is not a
/// number: a decimal comma and a thousands comma cannot be told apart there.
pub const GROUPED_DECIMAL_PATTERN: &str = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$";

/// A null of type String.
pub fn null_str() -> Expr {
    lit(NULL).cast(DataType::String)
}

/// Empty text -> null; other values unchanged.
pub fn empty_to_null(text: Expr) -> Expr {
    when(text.clone().str().len_bytes().eq(lit(0u32)))
        .then(null_str())
        .otherwise(text)
}

/// Trimmed text, null when empty or white space only.
pub fn trimmed(text: Expr) -> Expr {
    empty_to_null(text.cast(DataType::String).str().strip_chars(lit(NULL)))
}

/// Applies the normalization steps in order; an empty result is null.
pub fn normalize_key(text: Expr, steps: &[Normalize]) -> Expr {
    let mut x = text.cast(DataType::String);
    for step in steps {
        x = match step {
            Normalize::Trim => x.str().strip_chars(lit(NULL)),
            Normalize::Upper => x.str().to_uppercase(),
            Normalize::Lower => x.str().to_lowercase(),
            // `007` -> `7`; a value of zeros only keeps one (`000` -> `0`). A plain
            // strip, not a regex: this runs on every key of every row.
            Normalize::StripLeadingZeros => {
                let stripped = x.clone().str().strip_chars_start(lit("0"));
                when(
                    stripped
                        .clone()
                        .str()
                        .len_bytes()
                        .eq(lit(0u32))
                        .and(x.str().len_bytes().gt(lit(0u32))),
                )
                .then(lit("0"))
                .otherwise(stripped)
            }
        };
    }
    empty_to_null(x)
}

/// Parses a date (`YYYY-MM-DD`) or the date part of an ISO date-time into a
/// `Date`; null when the text is null or not a valid date (`2026-13-45`).
pub fn parse_date(text: Expr) -> Expr {
    let t = text.cast(DataType::String).str().strip_chars(lit(NULL));
    let options = StrptimeOptions {
        format: Some("%Y-%m-%d".into()),
        strict: false,
        exact: true,
        cache: true,
    };
    when(t.clone().str().contains(lit(DATE_PATTERN), true))
        .then(t.str().head(lit(10)).str().to_date(options))
        .otherwise(lit(NULL).cast(DataType::Date))
}

/// Trimmed decimal text with thousands separators removed (see
/// [`GROUPED_DECIMAL_PATTERN`]); null when the text is not a decimal number.
pub fn decimal_text(text: Expr) -> Expr {
    let t = text.cast(DataType::String).str().strip_chars(lit(NULL));
    let ungrouped = when(t.clone().str().contains(lit(GROUPED_DECIMAL_PATTERN), true))
        .then(t.clone().str().replace_all(lit(","), lit(""), true))
        .otherwise(t);
    when(ungrouped.clone().str().contains(lit(DECIMAL_PATTERN), true))
        .then(ungrouped)
        .otherwise(null_str())
}

/// Parses a number as `Float64`: decimal text (with thousands separators), or
/// anything Polars casts to a float (`1e5`). Null when neither.
pub fn parse_number(text: Expr) -> Expr {
    parse_number_of(decimal_text(text.clone()), text)
}

/// [`parse_number`] from an already computed [`decimal_text`] `decimal` of `text`.
pub fn parse_number_of(decimal: Expr, text: Expr) -> Expr {
    when(decimal.clone().is_not_null())
        .then(decimal.cast(DataType::Float64))
        .otherwise(
            text.cast(DataType::String)
                .str()
                .strip_chars(lit(NULL))
                .cast(DataType::Float64),
        )
}

/// Rounds a number to `scale` decimal places (half away from zero) and returns
/// it in minor units as `Int64`: `12500.5` -> `1250050` at scale 2.
///
/// Decimal text is rounded exactly on its digits (no binary floating point);
/// other numeric text (`1.25e4`) goes through `f64`. Null when not a number.
pub fn minor_units(text: Expr, scale: u32) -> Expr {
    minor_units_of(decimal_text(text.clone()), text, scale)
}

/// [`minor_units`] from an already computed [`decimal_text`] `d` of `text`.
pub fn minor_units_of(d: Expr, text: Expr, scale: u32) -> Expr {
    let negative = d.clone().str().starts_with(lit("-"));
    let body = d.clone().str().strip_chars_start(lit("+-"));
    let int_digits = body.clone().str().extract(lit(r"^(\d*)"), 1);
    let frac_digits = body.str().extract(lit(r"\.(\d*)$"), 1).fill_null(lit(""));
    // Fraction padded with zeros to scale + 1 digits: the kept digits and the rounding digit.
    let padded = concat_str(
        [frac_digits, lit("0".repeat(scale as usize + 1))],
        "",
        false,
    )
    .str()
    .head(lit(scale as i64 + 1));
    let kept = concat_str(
        [lit("0"), padded.clone().str().head(lit(scale as i64))],
        "",
        false,
    );
    let round_up = padded
        .str()
        .tail(lit(1))
        .cast(DataType::Int64)
        .gt_eq(lit(5i64))
        .cast(DataType::Int64);
    let integer = concat_str([lit("0"), int_digits], "", false).cast(DataType::Int64);
    let magnitude = integer * lit(10i64.pow(scale)) + kept.cast(DataType::Int64) + round_up;
    let exact = when(negative)
        .then(lit(0i64) - magnitude.clone())
        .otherwise(magnitude);
    let via_float = (parse_number_of(d.clone(), text) * lit(10f64.powi(scale as i32)))
        .round(0, RoundMode::HalfAwayFromZero)
        .cast(DataType::Int64);
    when(d.is_not_null()).then(exact).otherwise(via_float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(values: &[Option<&str>], expr: Expr) -> Series {
        let df = df!("v" => values).unwrap();
        let out = df.lazy().select([expr.alias("out")]).collect().unwrap();
        out.column("out").unwrap().as_materialized_series().clone()
    }

    fn strings(values: &[Option<&str>], expr: Expr) -> Vec<Option<String>> {
        let s = eval(values, expr);
        s.str()
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn trim_upper_lower() {
        let v = [Some("  ab-C1 "), Some("   "), None];
        assert_eq!(
            strings(
                &v,
                normalize_key(col("v"), &[Normalize::Trim, Normalize::Upper])
            ),
            [Some("AB-C1".to_string()), None, None]
        );
        assert_eq!(
            strings(
                &v,
                normalize_key(col("v"), &[Normalize::Trim, Normalize::Lower])
            ),
            [Some("ab-c1".to_string()), None, None]
        );
        // Without trim, white space is kept and is not empty.
        assert_eq!(
            strings(&v, normalize_key(col("v"), &[Normalize::Upper]))[1].as_deref(),
            Some("   ")
        );
    }

    #[test]
    fn strip_leading_zeros_keeps_a_lone_zero() {
        let v = [
            Some("000123"),
            Some("000"),
            Some("0"),
            Some("1200"),
            Some("0A7"),
            Some(""),
        ];
        let got = strings(&v, normalize_key(col("v"), &[Normalize::StripLeadingZeros]));
        let want = [
            Some("123"),
            Some("0"),
            Some("0"),
            Some("1200"),
            Some("A7"),
            None,
        ];
        assert_eq!(got, want.map(|w| w.map(str::to_string)));
    }

    #[test]
    fn dates_and_date_times_parse_to_their_day() {
        let v = [
            Some("2026-03-01"),
            Some(" 2026-03-01T23:59:59Z"),
            Some("2026-03-01 08:00"),
            Some("2026-13-45"),
            Some("2026-02-30"),
            Some("01/03/2026"),
            Some("2026-03-01x"),
            None,
        ];
        let s = eval(&v, parse_date(col("v")).cast(DataType::String));
        let got: Vec<Option<&str>> = s.str().unwrap().iter().collect();
        let day = Some("2026-03-01");
        assert_eq!(got, [day, day, day, None, None, None, None, None]);
    }

    #[test]
    fn decimal_text_accepts_signs_and_grouped_thousands_only() {
        let v = [
            Some(" -12.50 "),
            Some("+7"),
            Some(".5"),
            Some("1,234.50"),
            Some("12,34"),
            Some("1,2345"),
            Some("abc"),
            Some("1e5"),
        ];
        let got = strings(&v, decimal_text(col("v")));
        let want = [
            Some("-12.50"),
            Some("+7"),
            Some(".5"),
            Some("1234.50"),
            None,
            None,
            None,
            None,
        ];
        assert_eq!(got, want.map(|w| w.map(str::to_string)));
    }

    #[test]
    fn minor_units_round_half_away_from_zero_exactly() {
        let v = [
            Some("12500.5"),
            Some("12500.50"),
            Some("12500.004"),
            Some("12500.005"),
            Some("-1.005"),
            Some("1,234.5"),
            Some("1.25e2"),
            Some("x"),
        ];
        let s = eval(&v, minor_units(col("v"), 2));
        let got: Vec<Option<i64>> = s.i64().unwrap().iter().collect();
        assert_eq!(
            got,
            [
                Some(1250050),
                Some(1250050),
                Some(1250000),
                Some(1250001),
                Some(-101),
                Some(123450),
                Some(12500),
                None
            ]
        );
        let s = eval(&[Some("2.5"), Some("2.49")], minor_units(col("v"), 0));
        assert_eq!(
            s.i64().unwrap().iter().collect::<Vec<_>>(),
            [Some(3), Some(2)]
        );
    }
}
