//! Drift reports: Parquet, CSV, summary JSON and an HTML page.
