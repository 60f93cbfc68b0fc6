//! Object store access: URLs (local path, file://, s3://, gs://, az://, memory://) to stores.
