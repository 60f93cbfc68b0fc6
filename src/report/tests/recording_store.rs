//! Test store: InMemory that records the order of puts and copies and can fail
//! writes to one file name.

use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

/// An InMemory store that records the order of puts and can fail puts to one file name.
#[derive(Debug)]
pub(super) struct RecordingStore {
    inner: InMemory,
    puts: Mutex<Vec<String>>,
    fail_on: Mutex<Option<String>>,
}

impl RecordingStore {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(RecordingStore {
            inner: InMemory::new(),
            puts: Mutex::default(),
            fail_on: Mutex::default(),
        })
    }
    pub(super) fn fail_on(&self, file_name: Option<&str>) {
        *self.fail_on.lock().unwrap() = file_name.map(str::to_string);
    }
    pub(super) fn puts(&self) -> Vec<String> {
        self.puts.lock().unwrap().clone()
    }
}

impl std::fmt::Display for RecordingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordingStore")
    }
}

impl ObjectStore for RecordingStore {
    fn put_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFut<'c, PutResult>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            let failing = self.fail_on.lock().unwrap().clone();
            if failing.as_deref() == location.filename() {
                return Err(object_store::Error::Generic {
                    store: "RecordingStore",
                    source: "injected failure".into(),
                });
            }
            let result = self.inner.put_opts(location, payload, opts).await?;
            self.puts.lock().unwrap().push(location.to_string());
            Ok(result)
        })
    }
    fn put_multipart_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b Path,
        opts: PutMultipartOptions,
    ) -> BoxFut<'c, Box<dyn MultipartUpload>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.put_multipart_opts(location, opts)
    }
    fn get_opts<'a, 'b, 'c>(
        &'a self,
        location: &'b Path,
        options: GetOptions,
    ) -> BoxFut<'c, GetResult>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.get_opts(location, options)
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    fn list_with_delimiter<'a, 'b, 'c>(&'a self, prefix: Option<&'b Path>) -> BoxFut<'c, ListResult>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.list_with_delimiter(prefix)
    }
    fn copy_opts<'a, 'b, 'd, 'c>(
        &'a self,
        from: &'b Path,
        to: &'d Path,
        options: CopyOptions,
    ) -> BoxFut<'c, ()>
    where
        'a: 'c,
        'b: 'c,
        'd: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            let failing = self.fail_on.lock().unwrap().clone();
            if failing.as_deref() == to.filename() {
                return Err(object_store::Error::Generic {
                    store: "RecordingStore",
                    source: "injected failure".into(),
                });
            }
            self.inner.copy_opts(from, to, options).await?;
            self.puts.lock().unwrap().push(format!("copy {to}"));
            Ok(())
        })
    }
}
