//! Test ground: an object store that wraps another and fails on demand, to
//! test what the pipeline does when its store fails part-way. It records the
//! order of its successful writes (puts and copies) and counts the failures it
//! injected.
//!
//! Switches (all off at first, changeable at any time):
//! - every write ([`FaultyStore::fail_writes`]), the writes to one file name
//!   ([`FaultyStore::fail_on`]), or every write after the next `n`
//!   ([`FaultyStore::fail_writes_after`]);
//! - a share of writes, drawn from a seed ([`FaultyStore::fail_write_rate`]);
//! - multipart uploads after some parts ([`FaultyStore::fail_multipart_after`]):
//!   the next part and the completion fail, nothing becomes visible;
//! - reads, heads and lists ([`FaultyStore::fail_gets`], [`FaultyStore::fail_heads`],
//!   [`FaultyStore::fail_lists`]);
//! - conditional puts whose condition is ignored, as some S3-compatible
//!   servers do ([`FaultyStore::ignore_if_match`], [`FaultyStore::ignore_if_none_match`]):
//!   the put overwrites whatever is there.
//!
//! A failure is an `object_store::Error::Generic` whose text is [`INJECTED`].

use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

/// The text of an injected failure.
pub const INJECTED: &str = "injected object store failure";

/// What fails, and the seeded draw of [`FaultyStore::fail_write_rate`].
#[derive(Debug)]
struct Switches {
    fail_all: bool,
    fail_on: Option<String>,
    /// Writes still allowed before every write fails.
    writes_left: Option<u64>,
    write_rate: f64,
    rng: StdRng,
    multipart_parts: Option<usize>,
    gets: bool,
    heads: bool,
    lists: bool,
    ignore_if_match: bool,
    ignore_if_none_match: bool,
}

/// Wraps a store; records writes; fails what its switches say.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    writes: Mutex<Vec<String>>,
    switches: Mutex<Switches>,
    injected: Arc<AtomicU64>,
}

impl FaultyStore {
    /// Wraps `inner`, nothing failing; `fail_write_rate` draws from seed 0.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            writes: Mutex::default(),
            switches: Mutex::new(Switches {
                fail_all: false,
                fail_on: None,
                writes_left: None,
                write_rate: 0.0,
                rng: StdRng::seed_from_u64(0),
                multipart_parts: None,
                gets: false,
                heads: false,
                lists: false,
                ignore_if_match: false,
                ignore_if_none_match: false,
            }),
            injected: Arc::default(),
        })
    }

    /// Wraps a fresh in-memory store.
    pub fn in_memory() -> Arc<Self> {
        Self::new(Arc::new(InMemory::new()))
    }

    /// The wrapped store (to look at what was really written).
    pub fn inner(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    fn switches(&self) -> MutexGuard<'_, Switches> {
        self.switches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fails every put, copy and multipart upload while `failing`; `false`
    /// also ends [`FaultyStore::fail_writes_after`].
    pub fn fail_writes(&self, failing: bool) {
        let mut s = self.switches();
        s.fail_all = failing;
        s.writes_left = None;
    }

    /// Fails the puts and copies to objects named `file_name` (`None`: none).
    pub fn fail_on(&self, file_name: Option<&str>) {
        self.switches().fail_on = file_name.map(str::to_string);
    }

    /// Lets the next `n` writes (puts, copies, multipart uploads started)
    /// succeed, then fails every write until [`FaultyStore::fail_writes`]`(false)`.
    pub fn fail_writes_after(&self, n: u64) {
        self.switches().writes_left = Some(n);
    }

    /// Fails this share (0 to 1) of writes, drawn from `seed`.
    pub fn fail_write_rate(&self, rate: f64, seed: u64) {
        let mut s = self.switches();
        s.write_rate = rate.clamp(0.0, 1.0);
        s.rng = StdRng::seed_from_u64(seed);
    }

    /// Multipart uploads started from now on take `parts` parts, then fail
    /// the next part and their completion (`None`: multipart uploads work).
    pub fn fail_multipart_after(&self, parts: Option<usize>) {
        self.switches().multipart_parts = parts;
    }

    /// Fails every read (`get`, not `head`) while `failing`.
    pub fn fail_gets(&self, failing: bool) {
        self.switches().gets = failing;
    }

    /// Fails every `head` while `failing`.
    pub fn fail_heads(&self, failing: bool) {
        self.switches().heads = failing;
    }

    /// Fails every list while `failing`.
    pub fn fail_lists(&self, failing: bool) {
        self.switches().lists = failing;
    }

    /// Turns `PutMode::Update` into an overwrite while `ignoring` (a server
    /// that accepts `If-Match` and ignores it).
    pub fn ignore_if_match(&self, ignoring: bool) {
        self.switches().ignore_if_match = ignoring;
    }

    /// Turns `PutMode::Create` into an overwrite while `ignoring` (a server
    /// that accepts `If-None-Match: *` and ignores it).
    pub fn ignore_if_none_match(&self, ignoring: bool) {
        self.switches().ignore_if_none_match = ignoring;
    }

    /// Turns every switch off.
    pub fn heal(&self) {
        let mut s = self.switches();
        s.fail_all = false;
        s.fail_on = None;
        s.writes_left = None;
        s.write_rate = 0.0;
        s.multipart_parts = None;
        s.gets = false;
        s.heads = false;
        s.lists = false;
        s.ignore_if_match = false;
        s.ignore_if_none_match = false;
    }

    /// Successful writes in order: a put as its path, a copy as `copy <to>`
    /// (multipart uploads are not recorded).
    pub fn writes(&self) -> Vec<String> {
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many failures were injected.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn record(&self, write: String) {
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(write);
    }

    fn fail(&self) -> object_store::Error {
        injected(&self.injected)
    }

    fn check_write(&self, location: &Path) -> object_store::Result<()> {
        let mut s = self.switches();
        let named = s
            .fail_on
            .as_deref()
            .is_some_and(|n| Some(n) == location.filename());
        let exhausted = match &mut s.writes_left {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        };
        let rate = s.write_rate;
        let drawn = rate > 0.0 && s.rng.random_bool(rate);
        if s.fail_all || named || exhausted || drawn {
            drop(s);
            return Err(self.fail());
        }
        Ok(())
    }
}

fn injected(count: &AtomicU64) -> object_store::Error {
    count.fetch_add(1, Ordering::SeqCst);
    object_store::Error::Generic {
        store: "FaultyStore",
        source: INJECTED.into(),
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
            self.check_write(location)?;
            let mut opts = opts;
            let ignored = {
                let s = self.switches();
                match opts.mode {
                    PutMode::Update(_) => s.ignore_if_match,
                    PutMode::Create => s.ignore_if_none_match,
                    PutMode::Overwrite => false,
                }
            };
            if ignored {
                opts.mode = PutMode::Overwrite;
            }
            let result = self.inner.put_opts(location, payload, opts).await?;
            self.record(location.to_string());
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
        Box::pin(async move {
            self.check_write(location)?;
            let upload = self.inner.put_multipart_opts(location, opts).await?;
            let parts_left = self.switches().multipart_parts;
            let upload: Box<dyn MultipartUpload> = Box::new(FaultyUpload {
                inner: upload,
                parts_left,
                injected: self.injected.clone(),
            });
            Ok(upload)
        })
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
        Box::pin(async move {
            let failing = {
                let s = self.switches();
                if options.head {
                    s.heads
                } else {
                    s.gets
                }
            };
            if failing {
                return Err(self.fail());
            }
            self.inner.get_opts(location, options).await
        })
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.switches().lists {
            return futures::stream::once(std::future::ready(Err(self.fail()))).boxed();
        }
        self.inner.list(prefix)
    }
    fn list_with_delimiter<'a, 'b, 'c>(&'a self, prefix: Option<&'b Path>) -> BoxFut<'c, ListResult>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        Box::pin(async move {
            if self.switches().lists {
                return Err(self.fail());
            }
            self.inner.list_with_delimiter(prefix).await
        })
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
            self.check_write(to)?;
            self.inner.copy_opts(from, to, options).await?;
            self.record(format!("copy {to}"));
            Ok(())
        })
    }
}

/// A multipart upload that fails after its allowed parts.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    /// Parts still allowed; `None`: no limit.
    parts_left: Option<usize>,
    injected: Arc<AtomicU64>,
}

impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        match &mut self.parts_left {
            Some(0) => {
                let error = injected(&self.injected);
                Box::pin(std::future::ready(Err(error)))
            }
            Some(n) => {
                *n -= 1;
                self.inner.put_part(data)
            }
            None => self.inner.put_part(data),
        }
    }

    fn complete<'a, 'b>(&'a mut self) -> BoxFut<'b, PutResult>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            if self.parts_left == Some(0) {
                return Err(injected(&self.injected));
            }
            self.inner.complete().await
        })
    }

    fn abort<'a, 'b>(&'a mut self) -> BoxFut<'b, ()>
    where
        'a: 'b,
        Self: 'b,
    {
        self.inner.abort()
    }
}
