#!/usr/bin/env python3
"""DuckDB baseline for benches/reconcile.rs: the equivalent SQL on the same files.

Reads DIR/snapshot.parquet (contracts) and DIR/erp_extract.csv (all text),
normalizes keys (trim, upper case), full outer joins on the ERP record id,
compares five fields (vendor id, PO number, status through the value map,
amount in minor units, effective date), emits one row per drift (plus
contracts missing in the ERP and ERP rows naming no contract), and writes
Parquet. Prints one JSON line: seconds, peak RSS, drift rows.

Usage: python3 benches/duckdb_reconcile.py DIR [THREADS]   (needs `pip install duckdb`)
"""
import json
import sys
import time

import duckdb

SQL = """
COPY (
WITH c AS (
    SELECT id AS contract_id,
           NULLIF(upper(trim("external_metadata.id")), '') AS k,
           "external_metadata.record_data.vendor_id" AS sd_vendor,
           "external_metadata.record_data.po_number" AS sd_po,
           contract_status AS sd_status,
           "key_pointers.contract_value" AS sd_amount,
           "key_pointers.effective_date" AS sd_eff
    FROM read_parquet('{dir}/snapshot.parquet')
    WHERE deleted_at IS NULL AND contract_status IN ('SIGN', 'EXECUTED', 'ON_HOLD', 'VOIDED')
), e AS (
    SELECT NULLIF(upper(trim(RECORD_ID)), '') AS k, RECORD_ID AS erp_record_id,
           VENDOR_NO, PO_NUMBER, STATUS, AMOUNT, EFFECTIVE_DATE
    FROM read_csv('{dir}/erp_extract.csv', all_varchar = true, header = true)
), j AS MATERIALIZED (
    SELECT c.*, e.erp_record_id, e.k AS ek, e.VENDOR_NO, e.PO_NUMBER, e.STATUS, e.AMOUNT, e.EFFECTIVE_DATE
    FROM c FULL OUTER JOIN e ON c.k = e.k
), cmp AS (
    SELECT contract_id, erp_record_id,
        [
          CASE WHEN upper(trim(sd_vendor)) IS DISTINCT FROM upper(trim(VENDOR_NO)) THEN 'vendor_id' END,
          CASE WHEN ltrim(upper(trim(sd_po)), '0') IS DISTINCT FROM ltrim(upper(trim(PO_NUMBER)), '0') THEN 'po_number' END,
          CASE WHEN (CASE upper(trim(sd_status)) WHEN 'EXECUTED' THEN 'ACTIVE' WHEN 'SIGN' THEN 'PENDING_SIGNATURE'
                     WHEN 'ON_HOLD' THEN 'ON_HOLD' WHEN 'VOIDED' THEN 'CANCELLED' END)
                    IS DISTINCT FROM upper(trim(STATUS)) THEN 'status' END,
          CASE WHEN round(TRY_CAST(sd_amount AS DECIMAL(18, 4)), 2) IS DISTINCT FROM round(TRY_CAST(AMOUNT AS DECIMAL(18, 4)), 2) THEN 'amount' END,
          CASE WHEN TRY_CAST(left(sd_eff, 10) AS DATE) IS DISTINCT FROM TRY_CAST(left(EFFECTIVE_DATE, 10) AS DATE) THEN 'effective_date' END
        ] AS fields
    FROM j WHERE k IS NOT NULL AND ek IS NOT NULL
)
SELECT 'field_mismatch' AS drift_kind, contract_id, erp_record_id, f AS field
FROM (SELECT contract_id, erp_record_id, unnest(fields) AS f FROM cmp) WHERE f IS NOT NULL
UNION ALL
SELECT 'missing_in_erp', contract_id, NULL, NULL FROM j WHERE k IS NOT NULL AND ek IS NULL
UNION ALL
SELECT 'orphan_erp_record', NULL, erp_record_id, NULL FROM j WHERE contract_id IS NULL
) TO '{out}' (FORMAT parquet)
"""


def peak_rss_mib() -> float:
    """VmHWM of this process (ru_maxrss would carry the parent's peak across fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    directory = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    out = f"{directory}/duckdb_drift.parquet"
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    started = time.perf_counter()
    con.execute(SQL.format(dir=directory, out=out))
    seconds = time.perf_counter() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    peak_mib = peak_rss_mib()
    print(json.dumps({"engine": f"duckdb {duckdb.__version__}", "threads": threads,
                      "seconds": round(seconds, 3), "peak_rss_mib": round(peak_mib),
                      "drift_rows": rows}))


if __name__ == "__main__":
    main()
