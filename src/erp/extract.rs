//! ERP extract loading (CSV/Parquet through object_store) with a rejects list.
