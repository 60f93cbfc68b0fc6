//! The report page's lifecycle parts: cards, new rows first, badges, trend.

use super::*;
use crate::report::lifecycle::{LifecycleCounts, TrendPoint};

fn tracked_drift() -> DataFrame {
    let mut df = drift_frame("r2");
    let status = Column::new(
        "status".into(),
        ["open", "new", "new", "acknowledged", "open"],
    );
    df.with_column(status).unwrap();
    df.with_column(Column::new("age_days".into(), [3i64, 0, 0, 10, 1]))
        .unwrap();
    df
}

fn point(day: u32, new: u64) -> TrendPoint {
    TrendPoint {
        run_id: format!("run-{day}"),
        run_date: chrono::NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
        counts: LifecycleCounts {
            new,
            open: 4,
            resolved: 1,
            ..LifecycleCounts::default()
        },
    }
}

fn page(trend: Vec<TrendPoint>) -> String {
    let drift = tracked_drift();
    let info = run("r2", "2026-03-30", "2026-03-30T06:05:00Z");
    let mut summary = Summary::from_drift(&info, &drift, inputs()).unwrap();
    summary.lifecycle = Some(LifecycleCounts {
        new: 2,
        open: 2,
        acknowledged: 1,
        resolved: 3,
        resolved_by_job: 0,
        changed: 0,
        previous_run_id: Some("r1".into()),
    });
    summary.trend = trend;
    render_html(&summary, &drift, &rejects_frame()).unwrap()
}

#[test]
fn new_rows_come_first_with_badges_and_counts() {
    let html = page(vec![point(30, 2)]);
    let new_at = html.find("New since the last run").unwrap();
    let table_at = html.find("<h2>Drift rows</h2>").unwrap();
    assert!(new_at < table_at);
    let section = &html[new_at..html[new_at..].find("</table>").unwrap() + new_at];
    // The two new rows, both high: in report order of kinds (missing_in_erp first).
    assert_eq!(section.matches("<tr class=").count(), 2, "{section}");
    assert!(section.find("T-3").unwrap() < section.find("T-2").unwrap());
    assert!(html.contains("<span class=\"badge new\">new</span>"));
    assert!(html.contains("<span class=\"badge acknowledged\">acknowledged</span>"));
    assert!(html.contains("resolved since the last run"));
    assert!(html.contains("since run r1"));
}

#[test]
fn the_trend_renders_with_one_run_and_with_many() {
    let one = page(vec![point(30, 2)]);
    assert!(one.contains("<h2>Trend</h2>"));
    assert!(one.contains("last 1 nightly runs"));
    assert_eq!(one.matches("</rect>").count(), 3);

    let many: Vec<TrendPoint> = (1..=30).map(|d| point(d, d as u64)).collect();
    let html = page(many);
    assert!(html.contains("last 30 nightly runs"));
    assert_eq!(html.matches("</rect>").count(), 90);
    assert!(html.contains("<title>2026-03-30 run-30: 30 new</title>"));
    // Self-contained: no scripts, no links, no external resources.
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
}

#[test]
fn corrections_show_per_row_and_split_the_resolved_count() {
    let mut drift = tracked_drift();
    let action = [Some("update_erp_fields"), Some("review"), None, None, None];
    let outcome = [Some("applied"), Some("planned"), None, None, None];
    drift
        .with_column(Column::new("correction_action".into(), action))
        .unwrap();
    drift
        .with_column(Column::new("correction_outcome".into(), outcome))
        .unwrap();
    let info = run("r2", "2026-03-30", "2026-03-30T06:05:00Z");
    let mut summary = Summary::from_drift(&info, &drift, inputs()).unwrap();
    summary.lifecycle = Some(LifecycleCounts {
        resolved: 3,
        resolved_by_job: 2,
        previous_run_id: Some("r1".into()),
        ..LifecycleCounts::default()
    });
    let plain = render_html(&summary, &drift, &rejects_frame()).unwrap();
    assert!(plain.contains("<th>Correction</th>"));
    assert!(plain.contains(">update_erp_fields: applied<"), "{plain}");
    assert!(plain.contains("resolved since the last run"));
    assert!(!plain.contains("fixed by the job"));

    summary.apply = Some(Default::default());
    let html = render_html(&summary, &drift, &rejects_frame()).unwrap();
    assert!(
        html.contains(">2</div><div class=\"l\">resolved: fixed by the job"),
        "{html}"
    );
    assert!(html.contains(">1</div><div class=\"l\">resolved: fixed elsewhere"));
    // The new rows' section has the column too (the new review row).
    let new_at = html.find("New since the last run").unwrap();
    let section = &html[new_at..html[new_at..].find("</table>").unwrap() + new_at];
    assert!(section.contains("<th>Correction</th>") && section.contains(">review: planned<"));
}
