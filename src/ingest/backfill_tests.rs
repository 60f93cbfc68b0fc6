//! Tests of the backfill's dates, windows and ETA.

use super::*;
use crate::ingest::progress::backfill_eta_secs;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn dates_and_windows_parse_or_say_what_is_wrong() {
    assert_eq!(parse_date("--from", "2026-01-31").unwrap(), d("2026-01-31"));
    let e = parse_date("--to", "2026-02-30").unwrap_err().to_string();
    assert_eq!(e, "--to: \"2026-02-30\" is not a date (YYYY-MM-DD)");
    assert!(parse_date("--from", "31/01/2026").is_err());
    assert_eq!(parse_window("30d").unwrap(), chrono::Duration::days(30));
    assert_eq!(parse_window("12h").unwrap(), chrono::Duration::hours(12));
    for bad in ["0d", "-3d", "30", "d", "30m", "", "1.5d"] {
        let e = parse_window(bad).unwrap_err().to_string();
        assert!(e.starts_with("--window: "), "{bad}: {e}");
    }
}

#[test]
fn windows_cover_the_days_inclusive_and_stop_at_the_start() {
    let range = BackfillRange {
        from: d("2026-01-01"),
        to: d("2026-01-10"),
        by: WindowField::CreatedAt,
    };
    let w = windows_of(&range, chrono::Duration::days(4), t("2026-06-01T00:00:00Z")).unwrap();
    let bounds: Vec<_> = w.iter().map(|w| (w.start, w.end)).collect();
    assert_eq!(
        bounds,
        [
            (t("2026-01-01T00:00:00Z"), t("2026-01-05T00:00:00Z")),
            (t("2026-01-05T00:00:00Z"), t("2026-01-09T00:00:00Z")),
            (t("2026-01-09T00:00:00Z"), t("2026-01-11T00:00:00Z")),
        ]
    );
    // A range reaching into today ends at the backfill's start.
    let w = windows_of(
        &range,
        chrono::Duration::days(30),
        t("2026-01-03T12:00:00Z"),
    )
    .unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].end, t("2026-01-03T12:00:00Z"));
    let reversed = BackfillRange {
        from: d("2026-02-01"),
        ..range
    };
    let e = windows_of(
        &reversed,
        chrono::Duration::days(1),
        t("2026-06-01T00:00:00Z"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "--from 2026-02-01 is after --to 2026-01-10");
    let e = windows_of(&range, chrono::Duration::days(1), t("2025-06-01T00:00:00Z"))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "--from 2026-01-01 is in the future: nothing to backfill");
}

#[test]
fn the_eta_comes_from_the_pages_left_and_the_rate_limit() {
    // 3 pages left here, 4 windows left at 5 pages each, 10 requests/s.
    assert_eq!(backfill_eta_secs(4, 50, 10, 3, 10), 3);
    assert_eq!(backfill_eta_secs(4, 50, 10, 3, 1), 23);
    // Nothing done yet: one page a window.
    assert_eq!(backfill_eta_secs(20, 0, 0, 0, 10), 2);
    assert_eq!(backfill_eta_secs(0, 0, 0, 0, 10), 0);
}
