//! Query parameters of the sandbox contract list: `page`, `limit`, `query` and
//! `filter__<field>[$op]=value` filters (plain `filter__<field>=v` means `$eq`).

use crate::sandbox::dataset::FixtureContract;
use crate::sandbox::store::parse_instant;
use chrono::{DateTime, Utc};

/// Largest page size served; larger `limit` values are clamped to it.
pub const MAX_LIMIT: u32 = 100;
/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 10;

/// A parsed list request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListQuery {
    pub page: u32,
    pub limit: u32,
    pub text: Option<String>,
    pub filters: Vec<Filter>,
    /// The query without `page` and `limit`, parameters sorted: the same for
    /// every page of one listing.
    pub selection: String,
}

/// Comparison operator of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    In,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// One supported filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    /// `last_updated_on` (falls back to `created`) compared as an instant.
    Updated(Op, DateTime<Utc>),
    /// `created_at` compared as an instant.
    Created(Op, DateTime<Utc>),
    /// `display_status` against `contract_status`: `$eq`, `$ne`, `$in`.
    Status(Op, Vec<String>),
    /// `contract_id`, composite (`T-1`) or integer (`1`): `$eq`, `$ne`, `$in`.
    ContractId(Op, Vec<String>),
}

/// Why a list query was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError(pub String);

/// Parses the raw query string of a list request.
pub(crate) fn parse_list_query(raw: &str) -> Result<ListQuery, QueryError> {
    let mut q = ListQuery {
        page: 1,
        limit: DEFAULT_LIMIT,
        text: None,
        filters: Vec::new(),
        selection: String::new(),
    };
    let mut selection = vec![];
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if key != "page" && key != "limit" {
            selection.push(format!("{key}={value}"));
        }
        match key.as_ref() {
            "page" => q.page = parse_positive("page", &value)?,
            "limit" => q.limit = parse_positive("limit", &value)?.min(MAX_LIMIT),
            "query" => q.text = Some(value.to_lowercase()).filter(|t| !t.is_empty()),
            k if k.starts_with("filter__") => q.filters.push(parse_filter(k, &value)?),
            _ => {}
        }
    }
    selection.sort();
    q.selection = selection.join("&");
    Ok(q)
}

fn parse_positive(name: &str, value: &str) -> Result<u32, QueryError> {
    match value.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(QueryError(format!(
            "{name} must be a positive integer, got {value:?}"
        ))),
    }
}

fn parse_filter(key: &str, value: &str) -> Result<Filter, QueryError> {
    let rest = &key["filter__".len()..];
    let (field, op) = match rest.split_once('[') {
        Some((field, op)) => {
            let op = op
                .strip_suffix(']')
                .ok_or_else(|| QueryError(format!("malformed filter parameter {key:?}")))?;
            (field, op)
        }
        None => (rest, "$eq"),
    };
    let op = match op {
        "$eq" => Op::Eq,
        "$ne" => Op::Ne,
        "$in" => Op::In,
        "$gt" => Op::Gt,
        "$gte" => Op::Gte,
        "$lt" => Op::Lt,
        "$lte" => Op::Lte,
        other => return Err(QueryError(format!("unknown operator {other:?} in {key:?}"))),
    };
    let unsupported = || {
        QueryError(format!(
            "operator in {key:?} is not supported for field {field:?}"
        ))
    };
    match field {
        "last_updated_on" | "created_at" => {
            if op == Op::In {
                return Err(unsupported());
            }
            let at = parse_instant(value).ok_or_else(|| {
                QueryError(format!("{key}: {value:?} is not an ISO 8601 date-time"))
            })?;
            Ok(if field == "created_at" {
                Filter::Created(op, at)
            } else {
                Filter::Updated(op, at)
            })
        }
        "display_status" | "contract_id" => {
            if !matches!(op, Op::Eq | Op::Ne | Op::In) {
                return Err(unsupported());
            }
            let values = if op == Op::In {
                split_list(value)
            } else {
                vec![value.trim().to_string()]
            };
            Ok(if field == "display_status" {
                Filter::Status(op, values)
            } else {
                Filter::ContractId(op, values)
            })
        }
        other => Err(QueryError(format!(
            "unknown filter field {other:?} in {key:?}"
        ))),
    }
}

/// Splits a `$in` list on commas; `\,` is a literal comma.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                chars.next();
                current.push(',');
            }
            ',' => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn compare(op: Op, left: Option<DateTime<Utc>>, right: DateTime<Utc>) -> bool {
    let Some(left) = left else { return false };
    match op {
        Op::Eq => left == right,
        Op::Ne => left != right,
        Op::Gt => left > right,
        Op::Gte => left >= right,
        Op::Lt => left < right,
        Op::Lte => left <= right,
        Op::In => false,
    }
}

fn in_set(op: Op, values: &[String], hit: impl Fn(&str) -> bool) -> bool {
    let any = values.iter().any(|v| hit(v));
    if op == Op::Ne {
        !any
    } else {
        any
    }
}

impl ListQuery {
    /// True when the contract passes every filter and the text query.
    pub fn matches(&self, c: &FixtureContract) -> bool {
        let contract = &c.contract;
        let text_ok = self.text.as_ref().is_none_or(|t| {
            contract.contract_name.to_lowercase().contains(t)
                || contract.counter_party_name.to_lowercase().contains(t)
        });
        text_ok
            && self.filters.iter().all(|f| match f {
                Filter::Updated(op, at) => {
                    let text = contract
                        .last_updated_on
                        .as_deref()
                        .unwrap_or(&contract.created);
                    compare(*op, parse_instant(text), *at)
                }
                Filter::Created(op, at) => compare(*op, parse_instant(&contract.created), *at),
                Filter::Status(op, values) => {
                    in_set(*op, values, |v| v == contract.contract_status)
                }
                Filter::ContractId(op, values) => in_set(*op, values, |v| {
                    v == contract.id.composite()
                        || (v.parse::<i64>().ok().is_some()
                            && v.parse().ok() == contract.id.number())
                }),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(id: &str, status: &str, created: &str, updated: &str) -> FixtureContract {
        let json = serde_json::json!({"id": id, "created": created, "last_updated_on": updated,
            "contract_status": status, "contract_name": "Acme NDA"});
        FixtureContract {
            contract: serde_json::from_value(json).unwrap(),
            key_pointers: vec![],
            document: None,
        }
    }

    #[test]
    fn paging_defaults_clamp_and_refusals() {
        let q = parse_list_query("").unwrap();
        assert_eq!((q.page, q.limit), (1, DEFAULT_LIMIT));
        assert_eq!(
            parse_list_query("page=3&limit=500").unwrap().limit,
            MAX_LIMIT
        );
        assert!(parse_list_query("page=0").is_err());
        assert!(parse_list_query("limit=x").is_err());
        assert!(parse_list_query("filter__nope=1")
            .unwrap_err()
            .0
            .contains("nope"));
        assert!(parse_list_query("filter__display_status[$gt]=A").is_err());
        assert!(parse_list_query("filter__created_at[$gte]=yesterday").is_err());
        assert!(parse_list_query("filter__created_at[$like]=x").is_err());
    }

    #[test]
    fn filters_compare_instants_statuses_and_both_id_forms() {
        let c = contract(
            "T-7",
            "EXECUTED",
            "2026-01-01T00:00:00Z",
            "2026-02-01T10:00:00Z",
        );
        let yes = [
            "filter__last_updated_on[$gte]=2026-02-01T11:00:00%2B01:00",
            "filter__last_updated_on[$lt]=2026-02-01T10:00:01Z",
            "filter__created_at[$lte]=2026-01-01T00:00:00Z",
            "filter__display_status=EXECUTED",
            "filter__display_status[$in]=SIGN,EXECUTED",
            "filter__display_status[$ne]=DRAFT",
            "filter__contract_id[$eq]=T-7",
            "filter__contract_id[$in]=3,7",
            "query=acme",
        ];
        for q in yes {
            assert!(parse_list_query(q).unwrap().matches(&c), "{q}");
        }
        let no = [
            "filter__last_updated_on[$gt]=2026-02-01T10:00:00Z",
            "filter__created_at[$gt]=2026-01-01T00:00:00Z",
            "filter__display_status[$in]=SIGN,DRAFT",
            "filter__display_status[$ne]=EXECUTED",
            "filter__contract_id=H-8",
            "query=globex",
        ];
        for q in no {
            assert!(!parse_list_query(q).unwrap().matches(&c), "{q}");
        }
    }

    #[test]
    fn in_lists_honour_escaped_commas() {
        assert_eq!(split_list(r"a\,b, c,,"), ["a,b", "c"]);
    }
}
