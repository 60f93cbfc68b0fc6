//! Error messages on one line: an error and its causes, each said once.
//!
//! Our error types print only their own layer and return the cause from
//! `source()`; this joins the layers with `": "` the way anyhow's `{:#}` does.
//! Some libraries' errors print their cause *and* return it (Polars'
//! `Context` and `IO` errors): a cause whose text the layer above already
//! printed is left out, so no message repeats itself.

use std::error::Error;

/// `error` and each of its causes (the `source()` chain) joined with `": "`,
/// leaving out a cause whose text the previous layer already contains.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut last = out.clone();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        cause = e.source();
    }
    out
}

/// [`error_chain`] of an `anyhow::Error` (its contexts, then its causes).
pub fn anyhow_chain(error: &anyhow::Error) -> String {
    error_chain(error.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer {path}")]
    struct Outer {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn every_layer_once() {
        let e = Outer {
            path: "a/b",
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(error_chain(&e), "outer a/b: disk full");
        let e = anyhow::Error::new(e).context("writing the report");
        assert_eq!(anyhow_chain(&e), "writing the report: outer a/b: disk full");
    }

    #[test]
    fn a_cause_its_layer_already_printed_is_left_out() {
        // Polars' Context prints "{error}: {msg}" and returns `error` as its source.
        let inner = polars::error::PolarsError::NoData("empty CSV".into());
        let e = inner.context("reading x.csv".into());
        assert_eq!(
            format!("{:#}", anyhow::Error::new(e))
                .matches("empty CSV")
                .count(),
            2
        );
        let e =
            polars::error::PolarsError::NoData("empty CSV".into()).context("reading x.csv".into());
        assert_eq!(error_chain(&e), "no data: empty CSV: reading x.csv");
    }
}
