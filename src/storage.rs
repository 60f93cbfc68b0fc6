//! Object store access: a job's locations (local path, `file://`, `s3://`,
//! `memory://`) resolved to an [`ObjectStore`] and a path inside it.

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use std::sync::Arc;

/// Errors resolving a location.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The location could not be turned into a store.
    #[error("{url}: {reason}")]
    Unsupported {
        /// The location as written.
        url: String,
        /// Why.
        reason: String,
    },
    /// The store could not be built (credentials, region, bucket...).
    #[error("{url}: cannot open the object store")]
    Store {
        /// The location as written.
        url: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
}

/// A resolved location: a store and a path inside it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Path of the object (a file) or prefix (a folder) inside the store.
    pub path: Path,
    /// The location as the user wrote it, for messages.
    pub display: String,
    /// What an object path is printed after: `s3://bucket`, `memory:/`, or
    /// nothing for the local file system (whose paths print as `/...`).
    pub root: String,
}

/// Resolves a location. Local paths must be absolute (job validation makes them so).
/// `s3://bucket/key` reads the usual `AWS_*` environment variables (region, keys,
/// endpoint). `memory://name` gives a fresh in-memory store (tests pass their own
/// store through [`Location::in_store`] instead, to share it).
pub fn resolve(url: &str) -> Result<Location, StorageError> {
    let unsupported = |reason: &str| StorageError::Unsupported {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", url),
    };
    match scheme {
        "" | "file" => {
            let local = std::path::Path::new(rest);
            if !local.is_absolute() {
                return Err(unsupported("a local path must be absolute here"));
            }
            let path = Path::from_absolute_path(local).map_err(|e| unsupported(&e.to_string()))?;
            Ok(Location {
                store: Arc::new(LocalFileSystem::new()),
                path,
                display: url.to_string(),
                root: String::new(),
            })
        }
        "s3" | "s3a" => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(unsupported("no bucket name"));
            }
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|source| StorageError::Store { url: url.to_string(), source })?;
            Ok(Location {
                store: Arc::new(store),
                path: Path::from(key),
                display: url.to_string(),
                root: format!("{scheme}://{bucket}"),
            })
        }
        "memory" => {
            let key = rest.split_once('/').map(|(_, k)| k).unwrap_or("");
            Ok(Location {
                store: Arc::new(InMemory::new()),
                path: Path::from(key),
                display: url.to_string(),
                root: "memory:/".to_string(),
            })
        }
        "gs" | "az" | "abfs" | "abfss" | "azure" => Err(unsupported(
            "this build reads local files, file:// and s3:// (S3-compatible stores, incl. GCS's and MinIO's S3 endpoints via AWS_ENDPOINT)",
        )),
        other => Err(unsupported(&format!("unsupported URL scheme {other:?}"))),
    }
}

impl Location {
    /// The same path inside a given store (tests use an `InMemory` store they keep).
    pub fn in_store(store: Arc<dyn ObjectStore>, path: &str) -> Location {
        Location {
            store,
            path: Path::from(path),
            display: format!("memory://{path}"),
            root: "memory:/".to_string(),
        }
    }

    /// An object path of this store as a person can find it: `/abs/path` on
    /// the local file system, `s3://bucket/key` on S3.
    pub fn display_object(&self, path: &Path) -> String {
        format!("{}/{}", self.root, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_must_be_absolute() {
        assert!(resolve("relative/file.csv").is_err());
        let loc = resolve("/tmp/x/file.csv").unwrap();
        assert_eq!(loc.path.as_ref(), "tmp/x/file.csv");
        assert_eq!(
            resolve("file:///tmp/y.csv").unwrap().path.as_ref(),
            "tmp/y.csv"
        );
    }

    #[test]
    fn s3_url_splits_bucket_and_key() {
        let loc = resolve("s3://bucket/exports/contracts.parquet").unwrap();
        assert_eq!(loc.path.as_ref(), "exports/contracts.parquet");
        assert!(matches!(
            resolve("s3:///key"),
            Err(StorageError::Unsupported { .. })
        ));
    }

    #[test]
    fn object_paths_print_once_under_their_root() {
        let s3 = resolve("s3://erp/recon").unwrap();
        let run = s3.path.clone().join("drift").join("x");
        assert_eq!(s3.display_object(&run), "s3://erp/recon/drift/x");
        let local = resolve("/tmp/out").unwrap();
        assert_eq!(
            local.display_object(&local.path.clone().join("a")),
            "/tmp/out/a"
        );
    }

    #[test]
    fn unknown_scheme_names_the_url() {
        let e = resolve("ftp://host/file.csv").unwrap_err().to_string();
        assert!(e.starts_with("ftp://host/file.csv: "), "{e}");
    }
}
