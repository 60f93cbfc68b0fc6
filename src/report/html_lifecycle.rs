//! Report stage: the report page's parts about drift across runs: the
//! lifecycle cards, the "new since the last run" section, the trend chart
//! (inline SVG) and the status badges of the drift table.

use super::html::{card, cell, esc, fmt_int, rank_expr};
use super::lifecycle::{status, TrendPoint};
use super::{ReportError, Summary};
use crate::reconcile::spec::kinds;
use polars::prelude::*;
use std::fmt::Write as _;

/// Rows shown in "New since the last run"; the rest are in the drift table and files.
pub const HTML_NEW_ROWS: usize = 50;

/// Styles of the parts below, appended to the page's.
pub const LIFECYCLE_CSS: &str = ".badge{display:inline-block;border-radius:9px;padding:0 7px;\
font-size:11px;font-weight:600;text-transform:uppercase}.badge.new{background:#c62828;color:#fff}\
.badge.open{background:#e69b00;color:#1f2933}.badge.acknowledged{background:#d9e2ec;color:#3e4c59}\
.card.new{border-left:5px solid #c62828}.card.open{border-left:5px solid #e69b00}\
.card.acknowledged{border-left:5px solid #9aa5b1}.card.resolved{border-left:5px solid #31a24c}";

const NEW_COLUMNS: [(&str, &str); 9] = [
    ("severity", "Severity"),
    ("drift_kind", "Kind"),
    ("contract_id", "Contract"),
    ("erp_record_id", "ERP record"),
    ("field", "Field"),
    ("spotdraft_value", "SpotDraft value"),
    ("erp_value", "ERP value"),
    (CORRECTION_LABEL, "Correction"),
    ("drift_id", "Drift id"),
];

/// The column [`with_correction_label`] adds.
pub const CORRECTION_LABEL: &str = "_correction";

/// `df` with a [`CORRECTION_LABEL`] column: `<correction_action>: <correction_outcome>`
/// (`update_erp_fields: applied`), null for a row without a planned correction.
pub fn with_correction_label(mut df: DataFrame) -> PolarsResult<DataFrame> {
    let text = |name: &str| -> PolarsResult<Vec<Option<String>>> {
        match df.column(name) {
            Ok(c) => Ok(c
                .cast(&DataType::String)?
                .str()?
                .iter()
                .map(|v| v.map(str::to_string))
                .collect()),
            Err(_) => Ok(vec![None; df.height()]),
        }
    };
    let (actions, outcomes) = (text("correction_action")?, text("correction_outcome")?);
    let labels: Vec<Option<String>> = actions
        .into_iter()
        .zip(outcomes)
        .map(|(a, o)| match (a, o) {
            (Some(a), Some(o)) => Some(format!("{a}: {o}")),
            (a, _) => a,
        })
        .collect();
    df.with_column(Column::new(CORRECTION_LABEL.into(), labels))?;
    Ok(df)
}

/// Cards with the new, open, acknowledged and resolved counts (nothing when
/// the run did not track its drift across runs).
pub fn lifecycle_cards(out: &mut String, s: &Summary) {
    let Some(l) = &s.lifecycle else {
        return;
    };
    let since = match &l.previous_run_id {
        Some(id) => format!("since run {id}"),
        None => "first nightly run".to_string(),
    };
    out.push_str("<div class=\"cards lifecycle\">");
    card(out, "new", &fmt_int(l.new), &format!("new ({since})"));
    card(out, "open", &fmt_int(l.open), "open (seen before)");
    card(
        out,
        "acknowledged",
        &fmt_int(l.acknowledged),
        "acknowledged",
    );
    if s.apply.is_some() {
        // Corrections are on: who fixed what was resolved.
        card(
            out,
            "resolved",
            &fmt_int(l.resolved_by_job),
            "resolved: fixed by the job",
        );
        card(
            out,
            "resolved",
            &fmt_int(l.resolved.saturating_sub(l.resolved_by_job)),
            "resolved: fixed elsewhere",
        );
    } else {
        card(
            out,
            "resolved",
            &fmt_int(l.resolved),
            "resolved since the last run",
        );
    }
    out.push_str("</div>");
}

/// "New since the last run": the rows whose status is `new`, highest severity
/// first, at most [`HTML_NEW_ROWS`].
pub fn new_since_last_run(
    out: &mut String,
    s: &Summary,
    drift: &DataFrame,
) -> Result<(), ReportError> {
    let Some(l) = &s.lifecycle else {
        return Ok(());
    };
    let err = |source| ReportError::Polars {
        path: "report.html new drift".into(),
        source: Box::new(source),
    };
    let new = with_correction_label(drift.clone())
        .map_err(err)?
        .lazy()
        .filter(col("status").eq(lit(status::NEW)))
        .sort_by_exprs(
            [
                rank_expr("severity", &["high", "medium", "low"]),
                rank_expr("drift_kind", &kinds::ALL),
            ],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()
        .map_err(err)?;
    out.push_str("<h2 id=\"new\">New since the last run</h2>");
    match &l.previous_run_id {
        None => out.push_str(
            "<p class=\"muted\">This is the job's first tracked nightly run: every row is new.</p>",
        ),
        Some(id) if new.height() == 0 => {
            let _ = write!(
                out,
                "<p class=\"muted\">No new drift since run <code>{}</code>.</p>",
                esc(id)
            );
            return Ok(());
        }
        Some(id) => {
            let _ = write!(
                out,
                "<p class=\"muted\">{} rows not in run <code>{}</code>, highest severity first.</p>",
                fmt_int(new.height() as u64),
                esc(id)
            );
        }
    }
    let shown = new.head(Some(HTML_NEW_ROWS));
    out.push_str("<table class=\"new\"><thead><tr>");
    for (_, heading) in NEW_COLUMNS {
        let _ = write!(out, "<th>{heading}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    let columns: Vec<&StringChunked> = NEW_COLUMNS
        .iter()
        .map(|(name, _)| shown.column(name).and_then(|c| c.str()))
        .collect::<PolarsResult<_>>()
        .map_err(err)?;
    for row in 0..shown.height() {
        let severity = columns[0].get(row).unwrap_or("");
        let class = match severity {
            "high" | "medium" | "low" => severity,
            _ => "",
        };
        let _ = write!(out, "<tr class=\"{class}\">");
        for (i, column) in columns.iter().enumerate() {
            let td = if i == 0 { "<td class=\"sev\"" } else { "<td" };
            cell(out, td, column.get(row));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    if new.height() > shown.height() {
        let _ = write!(
            out,
            "<p class=\"muted\">{} more new rows are in the drift table below and in drift.csv \
             (<code>status = new</code>).</p>",
            fmt_int((new.height() - shown.height()) as u64)
        );
    }
    Ok(())
}

/// A status cell: a badge.
pub fn status_cell(out: &mut String, value: Option<&str>) {
    match value {
        Some(v @ (status::NEW | status::OPEN | status::ACKNOWLEDGED)) => {
            let _ = write!(out, "<td><span class=\"badge {v}\">{v}</span></td>");
        }
        other => cell(out, "<td", other),
    }
}

/// New, open and resolved drift per recent nightly run, as grouped bars in
/// inline SVG (from the run records: no Parquet is read).
pub fn trend_chart(out: &mut String, trend: &[TrendPoint]) {
    if trend.is_empty() {
        return;
    }
    let series = [
        ("new", "#c62828"),
        ("open", "#e69b00"),
        ("resolved", "#31a24c"),
    ];
    let value = |p: &TrendPoint, s: &str| match s {
        "new" => p.counts.new,
        "open" => p.counts.open,
        _ => p.counts.resolved,
    };
    let max = trend
        .iter()
        .flat_map(|p| series.iter().map(move |(s, _)| value(p, s)))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (bar_w, gap, plot_h, left, top) = (7.0, 10.0, 120.0, 40.0, 10.0);
    let group_w = bar_w * 3.0 + gap;
    let width = (left + group_w * trend.len() as f64 + 20.0).max(320.0);
    let height = top + plot_h + 44.0;
    let _ = write!(
        out,
        "<h2>Trend</h2><figure><figcaption>New, open and resolved drift, last {} nightly \
         runs</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" font-size=\"11\" font-family=\"sans-serif\">",
        trend.len()
    );
    let base = top + plot_h;
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#9aa5b1\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>",
        width - 10.0,
        left - 4.0,
        top + 8.0,
        max as u64,
        left - 4.0
    );
    let label_every = trend.len().div_ceil(10).max(1);
    for (i, p) in trend.iter().enumerate() {
        let x0 = left + gap / 2.0 + i as f64 * group_w;
        for (j, (name, color)) in series.iter().enumerate() {
            let n = value(p, name);
            let h = n as f64 / max * plot_h;
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w}\" height=\"{h:.1}\" fill=\"{color}\">\
                 <title>{} {}: {} {name}</title></rect>",
                x0 + j as f64 * bar_w,
                base - h,
                p.run_date,
                esc(&p.run_id),
                n
            );
        }
        if i % label_every == 0 || i + 1 == trend.len() {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x0 + bar_w * 1.5,
                base + 14.0,
                p.run_date.format("%m-%d")
            );
        }
    }
    for (j, (name, color)) in series.iter().enumerate() {
        let x = left + j as f64 * 80.0;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            base + 24.0,
            x + 14.0,
            base + 33.0
        );
    }
    out.push_str("</svg></figure>");
}
