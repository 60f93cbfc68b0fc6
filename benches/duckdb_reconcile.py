#!/usr/bin/env python3
"""DuckDB baseline for benches/reconcile.rs: the same work as the engine, in SQL.

Implements every drift rule the engine applies under the benchmark's spec (the
demo spec restricted to five compared fields; see `src/reconcile/spec.rs` for
the rules), on the same files:

- row validation of the extract: blank cells are null; a row with an empty
  record id is rejected and is no record; a row with an unparsable date
  (`EFFECTIVE_DATE`, `EXPIRY_DATE`) or amount is rejected *and* kept as a
  record with that value flagged unusable; ragged or non-UTF-8 CSV rows are
  rejected (`store_rejects`);
- links by id, by back-reference (composite `T-123` or integer `123` form) and
  by the fallback key (vendor id, PO number) between contracts and records
  that have no link by the first two;
- `unlinked_contract`, `missing_in_erp` (replaced by a `link_conflict` that
  says which id to write), `link_conflict` with its three actions,
  `orphan_erp_record`, `duplicate_link` both ways, `unusable_erp_value`;
- `field_mismatch` on 1:1 pairs with the typed comparisons: keys normalized
  (trim, upper, leading zeros), the status through the value map, the amount
  in exact minor units (digits cut after the third decimal, rounded half away
  from zero in integers), the effective date at day precision, text equality
  when a side does not parse;
- `missing_document` (executed contract, record without the checksum or with
  another one, case-insensitive).

Writes the distinct drift rows, sorted like the engine's, to
DIR/duckdb_drift.parquet and prints one JSON line: wall and CPU seconds, peak
RSS, drift rows, records, rejects. With `--compare FILE` (the engine's drift Parquet) it then
compares both drift-row sets on every column but the run columns and
`drift_id` (outside the timing) and adds the result to the JSON line, printing
the first differences to stderr.

Usage: python3 benches/duckdb_reconcile.py DIR [--threads N] [--extract csv|parquet]
       [--compare ENGINE_DRIFT.parquet]
Needs `pip install duckdb==2.0.1`.
"""
import argparse
import json
import resource
import sys
import time

import duckdb

MACROS = r"""
-- Trimmed text, null when empty or white space only (Polars' `strip_chars`;
-- DuckDB's `trim` alone strips spaces only). `x` must be a plain column.
CREATE OR REPLACE MACRO tr(x) AS nullif(CASE WHEN regexp_matches(x, '^\s|\s$')
    THEN regexp_replace(x, '^\s+|\s+$', '', 'g') ELSE x END, '');
-- The extract's blank cells are null.
CREATE OR REPLACE MACRO blank_null(x) AS CASE WHEN regexp_matches(x, '\S') THEN x END;
-- Decimal text of trimmed text t: plain, or `,` thousands in groups of three.
CREATE OR REPLACE MACRO dec_text(t) AS CASE
    WHEN regexp_full_match(t, '[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)') THEN t
    WHEN regexp_full_match(t, '[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?') THEN replace(t, ',', '')
    END;
-- A date, or the date part of an ISO date-time, from trimmed text t.
CREATE OR REPLACE MACRO pdate(t) AS CASE
    WHEN regexp_full_match(t, '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?')
    THEN CAST(try_strptime(left(t, 10), '%Y-%m-%d') AS DATE) END;
-- Both absent: equal; one absent: mismatch; both present: parsed equality when
-- both parse, trimmed text equality otherwise.
CREATE OR REPLACE MACRO typed_mismatch(ts, te, ps, pe) AS NOT (
    (ts IS NULL AND te IS NULL) OR (ts IS NOT NULL AND te IS NOT NULL AND coalesce(
        CASE WHEN ps IS NOT NULL AND pe IS NOT NULL THEN ps = pe ELSE ts = te END, false)));
"""


def minor_units(prefix: str) -> list[str]:
    """Staged select lists turning `{prefix}_d` (decimal text) and `{prefix}_t`
    (trimmed text) into `{prefix}_m`, minor units at scale 2: exact on the
    digits (cut after the third decimal, `(v + 5) // 10`, signed) while the
    integer part has at most 15 digits, else through DOUBLE, half away from zero."""
    d, t, u, pos, i, f = (f"{prefix}_{x}" for x in ("d", "t", "u", "pos", "int", "frac"))
    return [
        f"ltrim({d}, '+-') AS {u}",
        f"strpos({u}, '.') AS {pos}",
        f"CASE WHEN {pos} = 0 THEN {u} ELSE left({u}, {pos} - 1) END AS {i}, "
        f"CASE WHEN {pos} = 0 THEN '000' ELSE rpad(substr({u}, {pos} + 1, 3), 3, '0') END AS {f}",
        f"CASE WHEN {d} IS NOT NULL AND length({i}) <= 15 THEN "
        f"((coalesce(TRY_CAST({i} AS BIGINT), 0) * 1000 + coalesce(TRY_CAST({f} AS BIGINT), 0) + 5) // 10)"
        f" * CASE WHEN starts_with({d}, '-') THEN -1 ELSE 1 END "
        f"ELSE TRY_CAST(round(TRY_CAST(coalesce({d}, {t}) AS DOUBLE) * 100) AS BIGINT) END AS {prefix}_m",
    ]


EXTRACT_COLUMNS = [
    ("erp_record_id", "RECORD_ID"),
    ("spotdraft_contract_id", "SD_CONTRACT_ID"),
    ("vendor_id", "VENDOR_NO"),
    ("po_number", "PO_NUMBER"),
    ("legal_entity_id", "LEGAL_ENTITY"),
    ("status", "STATUS"),
    ("amount", "AMOUNT"),
    ("currency", "CURRENCY"),
    ("effective_date", "EFFECTIVE_DATE"),
    ("expiry_date", "EXPIRY_DATE"),
    ("document_sha256", "DOC_SHA256"),
]


def extract_source(directory: str, fmt: str, store_rejects: bool) -> str:
    if fmt == "parquet":
        return f"read_parquet('{directory}/erp_extract.parquet')"
    errors = "store_rejects = true" if store_rejects else "ignore_errors = true"
    return f"read_csv('{directory}/erp_extract.csv', all_varchar = true, header = true, {errors})"


def extract_rows(directory: str, fmt: str, store_rejects: bool = True) -> str:
    """The extract's rows: canonical names, blank cells null, validation flags."""
    mapped = ",\n    ".join(f'blank_null("{col}") AS {name}' for name, col in EXTRACT_COLUMNS)
    return f"""
SELECT * EXCLUDE (eff_t, exp_t, amount_t),
    erp_record_id IS NULL AS bad_id,
    eff_t IS NOT NULL AND pdate(eff_t) IS NULL AS bad_eff,
    exp_t IS NOT NULL AND pdate(exp_t) IS NULL AS bad_exp,
    amount_t IS NOT NULL AND dec_text(amount_t) IS NULL AS bad_amount
FROM (SELECT *, tr(effective_date) AS eff_t, tr(expiry_date) AS exp_t, tr(amount) AS amount_t
      FROM (SELECT {mapped} FROM {extract_source(directory, fmt, store_rejects)}))
"""


def staged(base: str, stages: list[str]) -> str:
    """`base` (a FROM clause) with each stage's select list added in its own
    subquery level, so every value is computed once and read by reference."""
    query = f"SELECT * FROM {base}"
    for stage in stages:
        query = f"SELECT *, {stage} FROM ({query})"
    return query


def statement(directory: str, fmt: str, out: str) -> str:
    """One statement: each frame the engine materializes is a materialized CTE."""
    pairs_base = """(SELECT l.c_idx, l.r_idx, c.c_vendor_key, c.c_po_key, c.c_status,
        tr(c.c_status_raw) AS s_ts, tr(r.r_status) AS s_te,
        tr(c.c_amount) AS as_t, tr(r.r_amount) AS ae_t,
        tr(c.c_eff) AS e_ts, tr(r.r_eff) AS e_te,
        lower(tr(c.c_doc)) AS c_doc, lower(tr(r.r_doc)) AS r_doc,
        r.r_vendor_key, r.r_po_key, r.bad_amount, r.bad_eff
    FROM links l JOIN c ON c.c_idx = l.c_idx JOIN r ON r.r_idx = l.r_idx
    WHERE l.n_c = 1 AND l.n_r = 1)"""
    pairs = staged(pairs_base, [
        "dec_text(as_t) AS as_d, dec_text(ae_t) AS ae_d, pdate(e_ts) AS e_ps, pdate(e_te) AS e_pe",
        *[", ".join(parts) for parts in zip(minor_units("as"), minor_units("ae"))],
    ])
    ctes = [
        # Contracts: ids and keys, scope, raw compared values.
        f"""
c AS MATERIALIZED (
SELECT *,
    CASE WHEN num IS NOT DISTINCT FROM c_id_key THEN NULL ELSE num END AS c_num_key,
    NOT c_deleted AND coalesce(c_status IN ('SIGN', 'EXECUTED', 'ON_HOLD', 'VOIDED'), false)
        AS c_in_scope
FROM (SELECT file_row_number AS c_idx,
    id AS c_id,
    upper(tr(id)) AS c_id_key,
    CAST(contract_num AS VARCHAR) AS num,
    upper(tr(contract_status)) AS c_status,
    tr(deleted_at) IS NOT NULL AS c_deleted,
    "external_metadata.id" AS c_erp_raw,
    upper(tr("external_metadata.id")) AS c_erp_key,
    document_sha256 AS c_doc,
    "external_metadata.record_data.vendor_id" AS c_vendor,
    upper(tr("external_metadata.record_data.vendor_id")) AS c_vendor_key,
    "external_metadata.record_data.po_number" AS c_po,
    regexp_replace(upper(tr("external_metadata.record_data.po_number")), '^0+(.)', '\\1') AS c_po_key,
    "external_metadata.record_data.legal_entity_id" AS c_le,
    contract_status AS c_status_raw,
    "key_pointers.contract_value" AS c_amount,
    "key_pointers.effective_date" AS c_eff
FROM read_parquet('{directory}/snapshot.parquet', file_row_number = true))
)
""",
        # Extract rows: blanks to null, validation flags.
        f"e AS MATERIALIZED ({extract_rows(directory, fmt)})",
        # Records: every row with a record id, keys normalized.
        r"""
r AS MATERIALIZED (
SELECT row_number() OVER () AS r_idx,
    erp_record_id AS r_erp_raw, upper(tr(erp_record_id)) AS r_erp_key,
    spotdraft_contract_id AS r_back_raw, upper(tr(spotdraft_contract_id)) AS r_back_key,
    vendor_id AS r_vendor, upper(tr(vendor_id)) AS r_vendor_key,
    po_number AS r_po, regexp_replace(upper(tr(po_number)), '^0+(.)', '\1') AS r_po_key,
    legal_entity_id AS r_le, status AS r_status, amount AS r_amount,
    effective_date AS r_eff, expiry_date AS r_exp, document_sha256 AS r_doc,
    bad_eff, bad_exp, bad_amount
FROM e WHERE NOT bad_id
)
""",
        # Links by id and back-reference (the lower rule wins), then the fallback
        # key between contracts and records with neither; link counts per side.
        """
strong AS MATERIALIZED (
SELECT c_idx, r_idx, min(rule) AS rule FROM (
    SELECT c.c_idx, r.r_idx, 1 AS rule FROM c JOIN r ON c.c_erp_key = r.r_erp_key WHERE c.c_in_scope
    UNION ALL
    SELECT c.c_idx, r.r_idx, 2 FROM c JOIN r ON c.c_id_key = r.r_back_key WHERE c.c_in_scope
    UNION ALL
    SELECT c.c_idx, r.r_idx, 2 FROM c JOIN r ON c.c_num_key = r.r_back_key WHERE c.c_in_scope
) GROUP BY c_idx, r_idx
)
""",
        """
links AS MATERIALIZED (
WITH fb AS (
    SELECT fc.c_idx, fr.r_idx, 3 AS rule
    FROM (SELECT c_idx, c_vendor_key, c_po_key FROM c
          WHERE c_in_scope AND c_vendor_key IS NOT NULL AND c_po_key IS NOT NULL
            AND c_idx NOT IN (SELECT c_idx FROM strong)) fc
    JOIN (SELECT r_idx, r_vendor_key, r_po_key FROM r
          WHERE r_vendor_key IS NOT NULL AND r_po_key IS NOT NULL
            AND r_idx NOT IN (SELECT r_idx FROM strong)) fr
      ON fc.c_vendor_key = fr.r_vendor_key AND fc.c_po_key = fr.r_po_key
), l AS (SELECT * FROM strong UNION ALL SELECT * FROM fb),
nc AS (SELECT c_idx, count(*) AS n_c FROM l GROUP BY c_idx),
nr AS (SELECT r_idx, count(*) AS n_r FROM l GROUP BY r_idx)
SELECT l.c_idx, l.r_idx, l.rule, nc.n_c, nr.n_r
FROM l JOIN nc ON nc.c_idx = l.c_idx JOIN nr ON nr.r_idx = l.r_idx
)
""",
        # Link conflicts: a contract naming an id X, a record R' naming it back.
        """
conf AS MATERIALIZED (
SELECT l.c_idx, l.r_idx, c.c_erp_raw AS erp_override, r.r_erp_raw AS erp_value,
    CASE WHEN pc.n_back = 1 AND l.n_r = 1 AND pc.n_id = 0 THEN 'set_spotdraft_external_metadata_id'
         WHEN pc.n_back = 1 AND l.n_r = 1 AND pc.n_id = 1 THEN 'update_erp_back_reference'
         ELSE 'review_link_conflict' END AS action
FROM links l
JOIN c ON c.c_idx = l.c_idx AND c.c_in_scope AND c.c_erp_key IS NOT NULL
JOIN (SELECT c_idx, count(*) FILTER (WHERE rule = 1) AS n_id,
             count(*) FILTER (WHERE rule = 2) AS n_back
      FROM links GROUP BY c_idx) pc ON pc.c_idx = l.c_idx
JOIN r ON r.r_idx = l.r_idx
WHERE l.rule = 2
)
""",
        # The 1:1 pairs with something to report: one flag per comparison.
        f"""
p AS MATERIALIZED (
SELECT * FROM (SELECT c_idx, r_idx,
    c_vendor_key IS DISTINCT FROM r_vendor_key AS m_vendor,
    c_po_key IS DISTINCT FROM r_po_key AS m_po,
    NOT ((s_ts IS NULL AND s_te IS NULL) OR (s_ts IS NOT NULL AND s_te IS NOT NULL AND coalesce(
        CASE upper(s_ts) WHEN 'EXECUTED' THEN 'ACTIVE' WHEN 'SIGN' THEN 'PENDING_SIGNATURE'
            WHEN 'ON_HOLD' THEN 'ON_HOLD' WHEN 'VOIDED' THEN 'CANCELLED' END
        = upper(s_te), false))) AS m_status,
    NOT bad_amount AND typed_mismatch(as_t, ae_t, as_m, ae_m) AS m_amount,
    NOT bad_eff AND typed_mismatch(e_ts, e_te, e_ps, e_pe) AS m_eff,
    c_status = 'EXECUTED' AND (r_doc IS NULL OR (c_doc IS NOT NULL AND c_doc <> r_doc)) AS m_doc
FROM ({pairs}))
WHERE m_vendor OR m_po OR m_status OR m_amount OR m_eff OR coalesce(m_doc, false)
)
""",
        # Every drift kind, then the contract's and the record's details.
    ]
    final = f"""
pv AS (
    SELECT p.*, c.c_vendor, c.c_po, c.c_status_raw, c.c_amount, c.c_eff,
        r.r_vendor, r.r_po, r.r_status, r.r_amount, r.r_eff
    FROM p JOIN c ON c.c_idx = p.c_idx JOIN r ON r.r_idx = p.r_idx
), only_contract AS (
    SELECT c_idx, r_idx FROM links WHERE n_r = 1
), d AS (
    SELECT 0 AS kind_ord, 'unlinked_contract' AS drift_kind, 'medium' AS severity,
        c.c_idx, l.r_idx, NULL AS contract_override, NULL AS erp_override, NULL AS field,
        NULL AS spotdraft_value, NULL AS erp_value,
        CASE WHEN l.r_idx IS NOT NULL THEN 'set_spotdraft_external_metadata_id'
             ELSE 'link_or_create_erp_record' END AS proposed_action
    FROM c LEFT JOIN (SELECT c_idx, r_idx FROM links WHERE n_c = 1) l ON l.c_idx = c.c_idx
    WHERE c.c_in_scope AND c.c_erp_key IS NULL
    UNION ALL
    SELECT 1, 'missing_in_erp', 'high', c.c_idx, NULL, NULL, c.c_erp_raw, NULL, NULL, NULL, 'review_erp_link'
    FROM c WHERE c.c_in_scope AND c.c_erp_key IS NOT NULL
      AND c.c_erp_key NOT IN (SELECT r_erp_key FROM r)
      AND c.c_idx NOT IN (SELECT c_idx FROM conf WHERE action = 'set_spotdraft_external_metadata_id')
    UNION ALL
    SELECT 2, 'link_conflict', 'high', c_idx, r_idx, NULL, erp_override, NULL, NULL, erp_value, action
    FROM conf
    UNION ALL
    SELECT 3, 'orphan_erp_record', 'medium', NULL, r.r_idx, r.r_back_raw, NULL, NULL, NULL, NULL,
        'review_orphan_erp_record'
    FROM r WHERE r.r_back_key IS NOT NULL
      AND r.r_back_key NOT IN (SELECT c_id_key FROM c WHERE NOT c_deleted AND c_id_key IS NOT NULL)
      AND r.r_back_key NOT IN (SELECT c_num_key FROM c WHERE NOT c_deleted AND c_num_key IS NOT NULL)
    UNION ALL
    SELECT 4, 'duplicate_link', 'high', c_idx, r_idx, NULL, NULL, NULL, NULL, NULL, 'resolve_duplicate_link'
    FROM links WHERE n_c > 1 OR n_r > 1
    UNION ALL
    SELECT 5, 'unusable_erp_value', 'medium', o.c_idx, r.r_idx, NULL, NULL, 'effective_date',
        c.c_eff, r.r_eff, 'fix_erp_value'
    FROM r LEFT JOIN only_contract o ON o.r_idx = r.r_idx LEFT JOIN c ON c.c_idx = o.c_idx
    WHERE r.bad_eff
    UNION ALL
    SELECT 5, 'unusable_erp_value', 'medium', o.c_idx, r.r_idx, NULL, NULL, 'expiry_date',
        NULL, r.r_exp, 'fix_erp_value'
    FROM r LEFT JOIN only_contract o ON o.r_idx = r.r_idx
    WHERE r.bad_exp
    UNION ALL
    SELECT 5, 'unusable_erp_value', 'medium', o.c_idx, r.r_idx, NULL, NULL, 'amount',
        c.c_amount, r.r_amount, 'fix_erp_value'
    FROM r LEFT JOIN only_contract o ON o.r_idx = r.r_idx LEFT JOIN c ON c.c_idx = o.c_idx
    WHERE r.bad_amount
    UNION ALL
    SELECT 6, 'field_mismatch', 'high', c_idx, r_idx, NULL, NULL, 'vendor_id', c_vendor, r_vendor,
        'update_erp_field' FROM pv WHERE m_vendor
    UNION ALL
    SELECT 6, 'field_mismatch', 'high', c_idx, r_idx, NULL, NULL, 'po_number', c_po, r_po,
        'update_erp_field' FROM pv WHERE m_po
    UNION ALL
    SELECT 6, 'field_mismatch', 'high', c_idx, r_idx, NULL, NULL, 'status', c_status_raw, r_status,
        'update_erp_field' FROM pv WHERE m_status
    UNION ALL
    SELECT 6, 'field_mismatch', 'high', c_idx, r_idx, NULL, NULL, 'amount', c_amount, r_amount,
        'update_erp_field' FROM pv WHERE m_amount
    UNION ALL
    SELECT 6, 'field_mismatch', 'medium', c_idx, r_idx, NULL, NULL, 'effective_date', c_eff, r_eff,
        'update_erp_field' FROM pv WHERE m_eff
    UNION ALL
    SELECT 7, 'missing_document', 'high', c_idx, r_idx, NULL, NULL, NULL, NULL, NULL,
        'push_executed_document' FROM pv WHERE m_doc
)
SELECT DISTINCT d.kind_ord, d.drift_kind, d.severity,
    coalesce(d.contract_override, c.c_id) AS contract_id,
    coalesce(d.erp_override, r.r_erp_raw) AS erp_record_id,
    coalesce(c.c_le, r.r_le) AS legal_entity_id,
    coalesce(c.c_vendor, r.r_vendor) AS vendor_id,
    coalesce(c.c_po, r.r_po) AS po_number,
    d.field, d.spotdraft_value, d.erp_value, d.proposed_action
FROM d LEFT JOIN c ON c.c_idx = d.c_idx LEFT JOIN r ON r.r_idx = d.r_idx
ORDER BY kind_ord, contract_id NULLS FIRST, erp_record_id NULLS FIRST, field NULLS FIRST,
    erp_value NULLS FIRST, spotdraft_value NULLS FIRST
"""
    return "COPY (WITH " + ",\n".join(ctes) + ",\n" + final + f") TO '{out}' (FORMAT parquet)"


# The columns both drift sets are compared on: all but the run columns and `drift_id`.
COMPARED = ("drift_kind, severity, contract_id, erp_record_id, legal_entity_id, vendor_id, "
            "po_number, field, spotdraft_value, erp_value, proposed_action")


def compare(con, ours: str, engine: str) -> dict:
    """Compares the two drift-row sets; prints the first differences to stderr."""
    def diff(a: str, b: str) -> tuple[int, list]:
        q = (f"SELECT {COMPARED} FROM read_parquet('{a}') EXCEPT "
             f"SELECT {COMPARED} FROM read_parquet('{b}')")
        n = con.execute(f"SELECT count(*) FROM ({q})").fetchone()[0]
        first = con.execute(f"SELECT * FROM ({q}) ORDER BY ALL NULLS FIRST LIMIT 10").fetchall()
        return n, first
    only_engine, first_engine = diff(engine, ours)
    only_duckdb, first_duckdb = diff(ours, engine)
    for name, n, rows in (("engine", only_engine, first_engine),
                          ("DuckDB", only_duckdb, first_duckdb)):
        if n:
            print(f"{n} drift rows only in the {name}'s set; the first ones "
                  f"({COMPARED}):", file=sys.stderr)
            for row in rows:
                print(f"  {row}", file=sys.stderr)
    return {"same_drift_set": only_engine == 0 and only_duckdb == 0,
            "only_engine": only_engine, "only_duckdb": only_duckdb}


def peak_rss_mib() -> float:
    """VmHWM of this process (ru_maxrss would carry the parent's peak across fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extract", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--compare", metavar="ENGINE_DRIFT_PARQUET")
    args = parser.parse_args()
    directory = args.dir
    out = f"{directory}/duckdb_drift.parquet"
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute(MACROS)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    con.execute(statement(directory, args.extract, out))
    seconds = time.perf_counter() - started
    now = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = now.ru_utime - cpu.ru_utime + now.ru_stime - cpu.ru_stime
    peak_mib = peak_rss_mib()
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    # Records and rejects, counted again outside the timing (the rows the
    # statement rejected for their structure are in DuckDB's `reject_errors`).
    structural = 0
    if args.extract == "csv":
        structural = con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()[0]
    flagged = con.execute(
        "SELECT count(*) FILTER (WHERE bad_id OR bad_eff OR bad_exp OR bad_amount), "
        f"count(*) FILTER (WHERE NOT bad_id) FROM ({extract_rows(directory, args.extract, False)})"
    ).fetchone()
    result = {"engine": f"duckdb {duckdb.__version__}", "threads": args.threads,
              "extract": args.extract, "seconds": round(seconds, 3), "cpu_seconds": round(cpu_seconds, 2),
              "peak_rss_mib": round(peak_mib), "drift_rows": rows,
              "records": flagged[1], "rejects": flagged[0] + structural}
    if args.compare:
        result.update(compare(con, out, args.compare))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
