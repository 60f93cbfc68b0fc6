//! Report stage: the self-contained HTML page (inline CSS and SVG, no scripts).

use super::html_lifecycle::{
    lifecycle_cards, new_since_last_run, status_cell, trend_chart, with_correction_label,
    CORRECTION_LABEL, LIFECYCLE_CSS,
};
use super::summary::{normalize_drift, normalize_rejects};
use super::{ReportError, Summary};
use crate::reconcile::spec::kinds;
use polars::prelude::*;
use std::fmt::Write as _;

/// Drift rows shown in the table; the rest are in `drift.csv` / `drift.parquet`.
pub const HTML_DRIFT_ROWS: usize = 200;
/// Rejected ERP rows shown; the rest are in `rejects.csv`.
pub const HTML_REJECT_ROWS: usize = 50;
/// Bars per chart before the rest are summed into one "other" bar.
const CHART_BARS: usize = 15;
/// Characters of a cell shown before it is cut (the full value, capped, is in the tooltip).
const CELL_CHARS: usize = 120;

/// Table columns: (frame column, heading).
const TABLE_COLUMNS: [(&str, &str); 15] = [
    ("severity", "Severity"),
    ("status", "Status"),
    ("age_days", "Age (days)"),
    ("drift_kind", "Kind"),
    ("contract_id", "Contract"),
    ("erp_record_id", "ERP record"),
    ("legal_entity_id", "Legal entity"),
    ("vendor_id", "Vendor"),
    ("po_number", "PO"),
    ("field", "Field"),
    ("spotdraft_value", "SpotDraft value"),
    ("erp_value", "ERP value"),
    ("proposed_action", "Proposed action"),
    (CORRECTION_LABEL, "Correction"),
    ("drift_id", "Drift id"),
];

const CSS: &str = "body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;\
margin:24px;color:#1f2933;background:#fff}h1{font-size:22px;margin:0 0 4px}\
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d9e2ec;padding-bottom:4px}\
.meta{color:#52606d;font-size:13px}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}\
.card{border:1px solid #d9e2ec;border-radius:6px;padding:10px 16px;min-width:120px}\
.card .n{font-size:24px;font-weight:600}.card .l{font-size:12px;color:#52606d}\
.card.high{border-left:5px solid #c62828}.card.medium{border-left:5px solid #e69b00}\
.card.low{border-left:5px solid #2f6fba}.clean{background:#e3f9e5;border:1px solid #31a24c;\
border-radius:6px;padding:12px 16px;font-size:16px}.charts{display:flex;flex-wrap:wrap;gap:24px}\
figure{margin:0}figcaption{font-weight:600;font-size:14px;margin-bottom:4px}\
table{border-collapse:collapse;font-size:12px;width:100%}th,td{border:1px solid #d9e2ec;\
padding:3px 6px;text-align:left;vertical-align:top}th{background:#f0f4f8;position:sticky;top:0}\
tr.high td{background:#fdecea}tr.medium td{background:#fff6dc}tr.low td{background:#eef4fb}\
td.sev{font-weight:600;text-transform:uppercase}.muted{color:#7b8794;font-size:13px}";

/// Renders `report.html` from the summary, the drift frame and the rejects frame.
/// Every value is HTML-escaped; the drift table holds the first
/// [`HTML_DRIFT_ROWS`] rows by severity (high first) then kind. Runs Polars:
/// call it from a blocking thread.
pub fn render_html(
    summary: &Summary,
    drift: &DataFrame,
    rejects: &DataFrame,
) -> Result<String, ReportError> {
    render_html_with_plan(summary, drift, rejects, None)
}

/// Planned corrections shown in the plan section; the rest are in `plan.csv`.
pub const HTML_PLAN_ROWS: usize = 50;

/// [`render_html`] with a section on the planned corrections (`plan`): counts
/// by action, the review reasons, and the first [`HTML_PLAN_ROWS`] rows.
pub fn render_html_with_plan(
    summary: &Summary,
    drift: &DataFrame,
    rejects: &DataFrame,
    plan: Option<&DataFrame>,
) -> Result<String, ReportError> {
    let drift = normalize_drift(drift)?;
    let rejects = normalize_rejects(rejects)?;
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("Drift report: {} ({})", summary.job, summary.run_date);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{CSS}{LIFECYCLE_CSS}</style></head><body>",
        esc(&title)
    );
    header(&mut out, summary);
    lifecycle_cards(&mut out, summary);
    new_since_last_run(&mut out, summary, &drift)?;
    if summary.drift_total == 0 && drift.height() == 0 {
        let _ = write!(
            out,
            "<p class=\"clean\"><strong>No drift.</strong> All {} in-scope contracts agree \
             with the ERP extract.</p>",
            fmt_int(summary.inputs.contracts_in_scope)
        );
    } else {
        charts(&mut out, summary);
        trend_chart(&mut out, &summary.trend);
        drift_table(
            &mut out,
            &drift,
            &dataset_dir(summary, super::layout::DRIFT_TABLE),
        )?;
    }
    let rejects_dir = dataset_dir(summary, super::layout::REJECTS_TABLE);
    rejects_table(
        &mut out,
        &rejects,
        summary.inputs.erp_rows_rejected,
        &rejects_dir,
    )?;
    if let Some(plan) = plan {
        plan_section(&mut out, summary, plan)?;
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

fn header(out: &mut String, s: &Summary) {
    let _ = write!(
        out,
        "<h1>Drift report: {}</h1><div class=\"meta\">Run <code>{}</code> for {} · \
         started {} · finished {}</div><div class=\"cards\">",
        esc(&s.job),
        esc(&s.run_id),
        s.run_date,
        esc(&s.started_at),
        esc(&s.finished_at)
    );
    if let Some(scope) = &s.scope {
        let kind = match s.run_kind {
            super::lifecycle::RunKind::Backfill => "Backfill",
            super::lifecycle::RunKind::Targeted => "Targeted run",
            super::lifecycle::RunKind::Nightly => "Run",
        };
        let what = if scope.erp_records.is_empty() {
            "only these contracts are reported"
        } else {
            "only these records' missing contracts are reported"
        };
        let _ = write!(
            out,
            "<div class=\"meta\">{kind} of {}: {what}, \
             nothing is resolved; not reported: {}</div>",
            esc(&scope.description),
            esc(&scope.kinds_not_reported.join(", "))
        );
    }
    let i = &s.inputs;
    card(
        out,
        "",
        &fmt_int(i.contracts_in_scope),
        &format!("contracts in scope (of {})", fmt_int(i.contracts)),
    );
    card(
        out,
        "",
        &fmt_int(i.erp_rows_valid),
        &format!("ERP rows valid (of {} read)", fmt_int(i.erp_rows_read)),
    );
    card(out, "", &fmt_int(s.drift_total), "drift rows");
    card(out, "", &fmt_int(i.erp_rows_rejected), "ERP rows rejected");
    for sev in ["high", "medium", "low"] {
        let n = s.by_severity.get(sev).copied().unwrap_or(0);
        card(out, sev, &fmt_int(n), &format!("{sev} severity"));
    }
    out.push_str("</div>");
}

pub(super) fn card(out: &mut String, class: &str, number: &str, label: &str) {
    let _ = write!(
        out,
        "<div class=\"card {class}\"><div class=\"n\">{}</div><div class=\"l\">{}</div></div>",
        esc(number),
        esc(label)
    );
}

fn charts(out: &mut String, s: &Summary) {
    out.push_str("<h2>Drift at a glance</h2><div class=\"charts\">");
    let by_kind: Vec<(String, u64)> = kinds::ALL
        .iter()
        .map(|k| (k.to_string(), s.by_kind.get(*k).copied().unwrap_or(0)))
        .chain(
            s.by_kind
                .iter()
                .filter(|(k, _)| !kinds::ALL.contains(&k.as_str()))
                .map(|(k, n)| (k.clone(), *n)),
        )
        .collect();
    bar_chart(out, "By kind", &by_kind, "#2f6fba");
    bar_chart(
        out,
        "By legal entity",
        &top_bars(&s.by_legal_entity, "entities"),
        "#7b61a8",
    );
    bar_chart(
        out,
        "Field mismatches by field",
        &top_bars(&s.by_field, "fields"),
        "#e07b00",
    );
    out.push_str("</div>");
}

/// The largest counts first; past [`CHART_BARS`] the rest become one bar.
fn top_bars(counts: &std::collections::BTreeMap<String, u64>, noun: &str) -> Vec<(String, u64)> {
    let mut bars: Vec<(String, u64)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
    bars.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if bars.len() > CHART_BARS {
        let rest: Vec<(String, u64)> = bars.split_off(CHART_BARS - 1);
        let total = rest.iter().map(|(_, n)| n).sum();
        bars.push((format!("{} other {noun}", rest.len()), total));
    }
    bars
}

/// A horizontal bar chart in inline SVG.
fn bar_chart(out: &mut String, title: &str, bars: &[(String, u64)], color: &str) {
    let _ = write!(out, "<figure><figcaption>{}</figcaption>", esc(title));
    if bars.is_empty() {
        out.push_str("<p class=\"muted\">None.</p></figure>");
        return;
    }
    let (label_w, bar_w, row_h) = (190.0, 260.0, 22.0);
    let width = label_w + bar_w + 70.0;
    let height = row_h * bars.len() as f64 + 4.0;
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" font-size=\"12\" font-family=\"sans-serif\">"
    );
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = i as f64 * row_h + 2.0;
        let w = (*n as f64 / max * bar_w).max(if *n > 0 { 1.0 } else { 0.0 });
        let _ = write!(
            out,
            "<g><title>{}: {}</title><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text></g>",
            esc(label),
            n,
            label_w - 6.0,
            y + 15.0,
            esc(&cut(label, 28)),
            label_w,
            y + 3.0,
            row_h - 6.0,
            label_w + w + 4.0,
            y + 15.0,
            fmt_int(*n)
        );
    }
    out.push_str("</svg></figure>");
}

/// Rank of a value in `order` (unknown values last), as a Polars expression.
pub(super) fn rank_expr(column: &str, order: &[&str]) -> Expr {
    order
        .iter()
        .enumerate()
        .rev()
        .fold(lit(order.len() as i32), |rest, (i, value)| {
            when(col(column).eq(lit(*value)))
                .then(lit(i as i32))
                .otherwise(rest)
        })
}

/// The run's folder in `table`, relative to the output folder, as a reader
/// finds it next to this page's own folder under `runs/`.
fn dataset_dir(s: &Summary, table: &str) -> String {
    super::layout::table_run_dir(
        &object_store::path::Path::default(),
        table,
        &s.job,
        s.run_date,
        &s.run_id,
    )
    .to_string()
}

fn drift_table(out: &mut String, drift: &DataFrame, dir: &str) -> Result<(), ReportError> {
    let top = with_correction_label(drift.clone())
        .map_err(|source| ReportError::Polars {
            path: "report.html drift table".into(),
            source: Box::new(source),
        })?
        .lazy()
        .sort_by_exprs(
            [
                rank_expr("severity", &["high", "medium", "low"]),
                rank_expr("drift_kind", &kinds::ALL),
            ],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .limit(HTML_DRIFT_ROWS as IdxSize)
        .collect()
        .map_err(|source| ReportError::Polars {
            path: "report.html drift table".into(),
            source: Box::new(source),
        })?;
    let _ = write!(
        out,
        "<h2>Drift rows</h2><p class=\"muted\">Showing {} of {} rows, highest severity first. \
         The full list is in drift.csv and drift.parquet under <code>{}/</code> in the \
         output folder.</p><table><thead><tr>",
        fmt_int(top.height() as u64),
        fmt_int(drift.height() as u64),
        esc(dir)
    );
    for (_, heading) in TABLE_COLUMNS {
        let _ = write!(out, "<th>{heading}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    let texts: Vec<Column> = TABLE_COLUMNS
        .iter()
        .map(|(name, _)| top.column(name).and_then(|c| c.cast(&DataType::String)))
        .collect::<PolarsResult<_>>()
        .map_err(|source| ReportError::Polars {
            path: "report.html drift table".into(),
            source: Box::new(source),
        })?;
    let columns: Vec<&StringChunked> = texts
        .iter()
        .map(|c| c.str())
        .collect::<PolarsResult<_>>()
        .map_err(|source| ReportError::Polars {
        path: "report.html drift table".into(),
        source: Box::new(source),
    })?;
    for row in 0..top.height() {
        let severity = columns[0].get(row).unwrap_or("");
        let class = match severity {
            "high" | "medium" | "low" => severity,
            _ => "",
        };
        let _ = write!(out, "<tr class=\"{class}\">");
        for (i, column) in columns.iter().enumerate() {
            match i {
                0 => cell(out, "<td class=\"sev\"", column.get(row)),
                1 => status_cell(out, column.get(row)),
                _ => cell(out, "<td", column.get(row)),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    Ok(())
}

fn rejects_table(
    out: &mut String,
    rejects: &DataFrame,
    rejected: u64,
    dir: &str,
) -> Result<(), ReportError> {
    out.push_str("<h2>Rejected ERP rows</h2>");
    if rejects.height() == 0 {
        if rejected == 0 {
            out.push_str("<p class=\"muted\">No ERP rows were rejected.</p>");
        } else {
            let _ = write!(
                out,
                "<p class=\"muted\">{} ERP rows were rejected, but their details were not \
                 passed to the report.</p>",
                fmt_int(rejected)
            );
        }
        return Ok(());
    }
    let err = |source| ReportError::Polars {
        path: "report.html rejects table".into(),
        source: Box::new(source),
    };
    let shown = rejects.head(Some(HTML_REJECT_ROWS));
    let rows = shown.column("row").and_then(|c| c.u64()).map_err(err)?;
    let reasons = shown.column("reason").and_then(|c| c.str()).map_err(err)?;
    let ids = shown
        .column("erp_record_id")
        .and_then(|c| c.str())
        .map_err(err)?;
    let _ = write!(
        out,
        "<p class=\"muted\">Showing {} of {} rejected rows; all are in rejects.csv under \
         <code>{}/</code>.</p>\
         <table><thead><tr><th>Row</th><th>ERP record</th><th>Reason</th></tr></thead><tbody>",
        fmt_int(shown.height() as u64),
        fmt_int(rejects.height() as u64),
        esc(dir)
    );
    for i in 0..shown.height() {
        out.push_str("<tr>");
        cell(out, "<td", rows.get(i).map(|r| r.to_string()).as_deref());
        cell(out, "<td", ids.get(i));
        cell(out, "<td", reasons.get(i));
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    Ok(())
}

/// One escaped cell; long values are cut, with the value (capped) as a tooltip.
pub(super) fn cell(out: &mut String, open: &str, value: Option<&str>) {
    match value {
        None => {
            let _ = write!(out, "{open}></td>");
        }
        Some(v) if v.chars().count() > CELL_CHARS => {
            let _ = write!(
                out,
                "{open} title=\"{}\">{}</td>",
                esc(&cut(v, 1000)),
                esc(&cut(v, CELL_CHARS))
            );
        }
        Some(v) => {
            let _ = write!(out, "{open}>{}</td>", esc(v));
        }
    }
}

/// The first `max` characters of `s`, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` -> `1,234,567`.
pub(super) fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn plan_section(out: &mut String, s: &Summary, plan: &DataFrame) -> Result<(), ReportError> {
    let Some(apply) = &s.apply else {
        return Ok(());
    };
    let _ = write!(
        out,
        "<h2>Planned corrections</h2><div class=\"meta\">Mode <code>{}</code> · plan checksum <code>{}</code> · full list in <code>{}</code></div><table><tr><th>action</th><th>count</th></tr>",
        esc(&apply.mode),
        esc(&apply.plan_checksum),
        esc(&dataset_dir(s, super::layout::PLAN_TABLE))
    );
    for (action, n) in &apply.planned {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(action),
            fmt_int(*n)
        );
    }
    out.push_str("</table>");
    if !apply.review_reasons.is_empty() {
        out.push_str("<h3>Review reasons</h3><table><tr><th>reason</th><th>count</th></tr>");
        for (reason, n) in &apply.review_reasons {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(reason),
                fmt_int(*n)
            );
        }
        out.push_str("</table>");
    }
    if let Some(why) = &apply.refused {
        let _ = write!(out, "<p><strong>Nothing applied:</strong> {}</p>", esc(why));
    }
    let cols = ["action", "erp_record_id", "contract_id", "values", "reason"];
    let text = |c: &str| -> Result<Vec<String>, ReportError> {
        let col = plan
            .column(c)
            .and_then(|col| col.cast(&DataType::String))
            .map_err(|source| ReportError::Column {
                frame: "plan",
                column: c.to_string(),
                expected: "text",
                source: Box::new(source),
            })?;
        Ok(col
            .str()
            .map_err(|source| ReportError::Column {
                frame: "plan",
                column: c.to_string(),
                expected: "text",
                source: Box::new(source),
            })?
            .iter()
            .take(HTML_PLAN_ROWS)
            .map(|v| v.unwrap_or("").to_string())
            .collect())
    };
    let values: Vec<Vec<String>> = cols.iter().map(|c| text(c)).collect::<Result<_, _>>()?;
    out.push_str("<table><tr>");
    for c in cols {
        let _ = write!(out, "<th>{c}</th>");
    }
    out.push_str("</tr>");
    for i in 0..plan.height().min(HTML_PLAN_ROWS) {
        out.push_str("<tr>");
        for v in &values {
            let _ = write!(out, "<td>{}</td>", esc(&v[i]));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>a&'b\"</script>"),
            "&lt;script&gt;a&amp;&#39;b&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn formats_thousands() {
        assert_eq!(fmt_int(0), "0");
        assert_eq!(fmt_int(999), "999");
        assert_eq!(fmt_int(1000), "1,000");
        assert_eq!(fmt_int(1234567), "1,234,567");
    }

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut("ééééé", 3), "ééé…");
        assert_eq!(cut("abc", 3), "abc");
    }

    #[test]
    fn folds_small_bars_into_other() {
        let counts = (0..20u64).map(|i| (format!("LE{i:02}"), i + 1)).collect();
        let bars = top_bars(&counts, "entities");
        assert_eq!(bars.len(), CHART_BARS);
        assert_eq!(bars[0], ("LE19".to_string(), 20));
        let total: u64 = bars.iter().map(|(_, n)| n).sum();
        assert_eq!(total, (1..=20).sum::<u64>());
        assert_eq!(bars.last().unwrap().0, "6 other entities");
    }
}
