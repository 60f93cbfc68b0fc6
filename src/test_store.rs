//! Test support: an object store that wraps another, records the order of its
//! writes (puts and copies) and fails writes on demand, to test what a stage
//! does when the store fails part-way.

use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

/// The text of an injected failure.
pub(crate) const INJECTED: &str = "injected write failure";

/// Wraps a store; records writes; fails every write while `fail_writes(true)`,
/// or the writes to one file name set by `fail_on`.
#[derive(Debug)]
pub(crate) struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    writes: Mutex<Vec<String>>,
    fail_all: AtomicBool,
    fail_on: Mutex<Option<String>>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            writes: Mutex::default(),
            fail_all: AtomicBool::new(false),
            fail_on: Mutex::default(),
        })
    }

    /// Wraps a fresh in-memory store.
    pub(crate) fn in_memory() -> Arc<Self> {
        Self::new(Arc::new(InMemory::new()))
    }

    /// Fails every put and copy while `failing`.
    pub(crate) fn fail_writes(&self, failing: bool) {
        self.fail_all.store(failing, Ordering::SeqCst);
    }

    /// Fails the puts and copies to objects named `file_name` (`None`: none).
    pub(crate) fn fail_on(&self, file_name: Option<&str>) {
        *self.fail_on.lock().unwrap() = file_name.map(str::to_string);
    }

    /// Successful writes in order: a put as its path, a copy as `copy <to>`.
    pub(crate) fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }

    fn check(&self, location: &Path) -> object_store::Result<()> {
        let named = self.fail_on.lock().unwrap().clone();
        if self.fail_all.load(Ordering::SeqCst) || named.as_deref() == location.filename() {
            return Err(object_store::Error::Generic {
                store: "FaultyStore",
                source: INJECTED.into(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl ObjectStore for FaultyStore {
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
            self.check(location)?;
            let result = self.inner.put_opts(location, payload, opts).await?;
            self.writes.lock().unwrap().push(location.to_string());
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
            self.check(to)?;
            self.inner.copy_opts(from, to, options).await?;
            self.writes.lock().unwrap().push(format!("copy {to}"));
            Ok(())
        })
    }
}
