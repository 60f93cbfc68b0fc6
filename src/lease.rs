//! One run per job: a lease object in the job's output store.
//!
//! Before a run writes anything it [`acquire`]s the lease of its job: a small JSON
//! object under `{output_prefix}/_leases/` that names the holder (host, pid, run id)
//! and says until when the lease is valid. The holder renews it every TTL/3 from a
//! background task ([`Lease::keep_alive`]) and marks it released when the run ends.
//! A second run of the same job finds a live lease and stops with
//! [`LeaseError::Held`], which names the holder. A run that died leaves a lease that
//! expires one TTL (60 s by default) after its last renewal; the next run takes it
//! over and logs a warning naming the dead run. `--break-lease` (`break_lease` here)
//! takes even a live lease, for when the operator knows its holder is gone; the
//! broken holder's next renewal fails with [`LeaseError::Lost`].
//!
//! Every change of a lease is one atomic conditional write, so of two runs that
//! race for the same lease exactly one wins. Object stores offer two kinds of
//! conditional write, hence two schemes ([`LeaseScheme`]):
//! - **ConditionalUpdate** (S3, `InMemory`): one object, `{prefix}/_leases/{job}.json`.
//!   The first lease is written with `PutMode::Create`; taking over, renewing and
//!   releasing are `PutMode::Update` with the e-tag/version read last, so a writer
//!   that did not see the latest version fails with a precondition error.
//! - **Generations** (`LocalFileSystem`, which has no `PutMode::Update`): one object
//!   per change, `{prefix}/_leases/{job}/{generation:020}.json`, written with
//!   `PutMode::Create` only. The lease is the highest generation; every change
//!   creates the next one, so two writers that saw the same generation compete for
//!   the same name and one gets `AlreadyExists`. Generations older than the previous
//!   one are deleted after each change (best effort). Since deleted names could be
//!   created again, a writer lists the folder after each create and gives up if a
//!   higher generation exists.
//!
//! [`LeaseScheme::Auto`] probes the store once per acquisition: it writes
//! `{prefix}/_leases/.probe`, tries a conditional update of it, then the same
//! update on the now stale version, which must fail (some S3-compatible
//! servers ignore `If-Match`; those get Generations if they enforce
//! `If-None-Match`, else [`LeaseError::NoConditionalWrites`]). Whichever scheme
//! is used, acquisition also looks at the other scheme's location and refuses (or,
//! with `break_lease`, breaks) a live lease there, so a store whose configuration
//! changed between two runs cannot let both in.
//!
//! Expiry compares a [`Clock`] with the `expires_at` that the holder wrote, so hosts
//! that share a lease need clocks that agree to well within the TTL (NTP does).
//! Tests use a [`ManualClock`] instead of sleeping.
//!
//! A lease does not fence writes: a holder that stalls for longer than a TTL may
//! still write after another run took over. Long steps should call
//! [`LeaseGuard::check`] before they publish results.

mod clock;
mod conditional;
mod generations;
mod guard;

#[cfg(test)]
mod tests;

pub use clock::{Clock, ManualClock};
pub use guard::LeaseGuard;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long a lease lasts without renewal unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Folder under the output prefix that holds the leases.
pub const LEASES_DIR: &str = "_leases";

/// The run holding (or asking for) a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Host name of the machine the run is on.
    pub host: String,
    /// Process id of the run.
    pub pid: u32,
    /// The run's id.
    pub run_id: String,
}

impl Holder {
    /// This process: host from `/etc/hostname` or `$HOSTNAME` (else `unknown`),
    /// [`std::process::id`] and the given run id.
    pub fn current(run_id: impl Into<String>) -> Self {
        Holder {
            host: host_name(),
            pid: std::process::id(),
            run_id: run_id.into(),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {} on {})", self.run_id, self.pid, self.host)
    }
}

fn host_name() -> String {
    let non_empty = |s: String| {
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(non_empty)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(non_empty))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Which kind of conditional write a lease relies on (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeaseScheme {
    /// Probe the store: ConditionalUpdate if it supports `PutMode::Update`, else Generations.
    #[default]
    Auto,
    /// One object, changed with `PutMode::Update` (S3, `InMemory`).
    ConditionalUpdate,
    /// One object per change, written with `PutMode::Create` only (`LocalFileSystem`).
    Generations,
}

/// How leases are taken and kept.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// How long a lease lasts without renewal; [`Lease::keep_alive`] renews every third of it.
    pub ttl: Duration,
    /// The scheme; [`LeaseScheme::Auto`] probes the store.
    pub scheme: LeaseScheme,
    /// Where the current time comes from.
    pub clock: Clock,
}

impl Default for LeaseConfig {
    /// 60 s, [`LeaseScheme::Auto`], the system clock.
    fn default() -> Self {
        LeaseConfig {
            ttl: DEFAULT_TTL,
            scheme: LeaseScheme::Auto,
            clock: Clock::system(),
        }
    }
}

/// Why a lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds a live lease on the job.
    #[error(
        "job {job:?} is already running: lease {path} is held by {holder} until {}; \
         wait for it, or take it over with --break-lease if that process is gone",
        rfc3339(.expires_at)
    )]
    Held {
        /// The job.
        job: String,
        /// The lease object that names the holder.
        path: Path,
        /// Who holds it.
        holder: Holder,
        /// When it expires unless renewed.
        expires_at: DateTime<Utc>,
    },
    /// The lease was taken by another run, or it expired before it could be renewed.
    #[error("job {job:?} lost its lease {path}: {}", lost_reason(.by))]
    Lost {
        /// The job.
        job: String,
        /// The lease object.
        path: Path,
        /// The run that holds it now, when known.
        by: Option<Holder>,
    },
    /// The store failed.
    #[error("lease {path}: {op} failed")]
    Store {
        /// What was being done: `create`, `read`, `conditional update`, `list`...
        op: &'static str,
        /// The object or folder.
        path: Path,
        /// The store's error.
        source: Box<object_store::Error>,
    },
    /// The lease object is not a lease.
    #[error(
        "lease {path} is not a valid lease object; \
         inspect it, or overwrite it with --break-lease"
    )]
    Corrupt {
        /// The object.
        path: Path,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// The store accepts conditional writes and ignores their conditions (a
    /// stale `If-Match` update and an `If-None-Match` create of an existing
    /// object both succeeded), so no lease can keep a second run out.
    #[error(
        "lease {path}: the output store ignores conditional writes (If-Match and \
         If-None-Match), so it cannot hold a lease; use a store that enforces them \
         (AWS S3, or an S3-compatible server with conditional writes)"
    )]
    NoConditionalWrites {
        /// The probe object.
        path: Path,
    },
    /// The lease kept changing under this run's attempts to take it.
    #[error("lease {path} of job {job:?} kept changing while taking it; try again")]
    Contended {
        /// The job.
        job: String,
        /// The lease object or folder.
        path: Path,
    },
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn lost_reason(by: &Option<Holder>) -> String {
    match by {
        Some(holder) => format!("it is now held by {holder}"),
        None => "it expired or was removed before it could be renewed".to_string(),
    }
}

/// Takes the lease of `job` under `prefix`, or says who holds it.
///
/// A missing or released lease is taken at once. An expired one is taken over with a
/// warning naming its holder ([`Lease::previous_holder`]). A live one held by another
/// run gives [`LeaseError::Held`], unless `break_lease` is set: then it is taken all
/// the same, with a warning. A lease object that does not parse gives
/// [`LeaseError::Corrupt`], unless `break_lease` is set: then it is overwritten.
pub async fn acquire(
    store: Arc<dyn ObjectStore>,
    prefix: &Path,
    job: &str,
    holder: Holder,
    config: &LeaseConfig,
    break_lease: bool,
) -> Result<Lease, LeaseError> {
    let scheme = match config.scheme {
        LeaseScheme::Auto => probe(store.as_ref(), prefix).await?,
        forced => forced,
    };
    let ctx = Ctx {
        store,
        prefix: prefix.clone(),
        job: job.to_string(),
        holder,
        ttl: config.ttl,
        clock: config.clock.clone(),
    };
    let mut lease = match scheme {
        LeaseScheme::Generations => generations::acquire(ctx, break_lease).await?,
        _ => conditional::acquire(ctx, break_lease).await?,
    };
    if let Err(e) = lease.guard_other_scheme(break_lease).await {
        if let Err(release) = lease.write(true).await {
            tracing::warn!(
                job = %lease.ctx.job, path = %lease.path(), error = %crate::error_chain::error_chain(&release),
                "could not release the lease after refusing the run; it will expire"
            );
        }
        return Err(e);
    }
    Ok(lease)
}

/// A lease this run holds. Renew it within its TTL ([`Lease::renew`], or
/// [`Lease::keep_alive`] for a background task) and release it when done; dropped
/// without release, it expires one TTL after its last renewal.
#[derive(Debug)]
pub struct Lease {
    ctx: Ctx,
    /// What this run wrote last.
    record: LeaseRecord,
    state: SchemeState,
    previous: Option<Holder>,
}

impl Lease {
    /// Extends the lease by a TTL from now. [`LeaseError::Lost`] if another run took it.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        self.write(false).await
    }

    /// Marks the lease released, so the next run takes it at once and without a warning.
    /// [`LeaseError::Lost`] if another run took it.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        self.write(true).await
    }

    /// Hands the lease to a task that renews it every TTL/3 until the guard is released
    /// or dropped. Must be called within a tokio runtime.
    pub fn keep_alive(self) -> LeaseGuard {
        LeaseGuard::start(self)
    }

    /// The run whose lease this one replaced because it had expired (or was broken with
    /// `break_lease`); `None` when the lease was free or released.
    pub fn previous_holder(&self) -> Option<&Holder> {
        self.previous.as_ref()
    }

    /// This run.
    pub fn holder(&self) -> &Holder {
        &self.ctx.holder
    }

    /// The scheme in use: [`LeaseScheme::ConditionalUpdate`] or [`LeaseScheme::Generations`].
    pub fn scheme(&self) -> LeaseScheme {
        match self.state {
            SchemeState::Conditional { .. } => LeaseScheme::ConditionalUpdate,
            SchemeState::Generations { .. } => LeaseScheme::Generations,
        }
    }

    /// The lease object written last (with Generations, it changes at each renewal).
    pub fn path(&self) -> &Path {
        match &self.state {
            SchemeState::Conditional { path, .. } | SchemeState::Generations { path } => path,
        }
    }

    /// When the lease expires unless renewed.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.record.expires_at
    }

    /// Renews (`released == false`) or releases the lease.
    async fn write(&mut self, released: bool) -> Result<(), LeaseError> {
        let now = self.ctx.clock.now();
        let mut next = self.record.clone();
        next.renewed_at = now;
        next.expires_at = if released { now } else { self.ctx.expiry(now) };
        next.generation = self.record.generation + 1;
        next.released = released;
        match &mut self.state {
            SchemeState::Conditional { path, version } => {
                conditional::write(&self.ctx, path, version, &mut self.record, next).await
            }
            SchemeState::Generations { path } => {
                generations::write(&self.ctx, path, &mut self.record, next).await
            }
        }
    }

    /// Refuses (or breaks) a live lease at the other scheme's location.
    async fn guard_other_scheme(&mut self, break_lease: bool) -> Result<(), LeaseError> {
        let now = self.ctx.clock.now();
        let other = match self.state {
            SchemeState::Conditional { .. } => generations::read_current(&self.ctx).await?,
            SchemeState::Generations { .. } => conditional::read_current(&self.ctx).await?,
        };
        let Some(Current { path, record, .. }) = other else {
            return Ok(());
        };
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(
                    job = %self.ctx.job, path = %path, error = %crate::error_chain::error_chain(&e),
                    "ignoring an unreadable lease object left by the other lease scheme"
                );
                return Ok(());
            }
        };
        if !record.is_live(now) || record.holder == self.ctx.holder {
            return Ok(());
        }
        if !break_lease {
            return Err(self.ctx.held(path, record));
        }
        match self.state {
            SchemeState::Conditional { .. } => generations::break_live(&self.ctx).await?,
            SchemeState::Generations { .. } => conditional::break_live(&self.ctx, &record).await?,
        }
        let broken = Takeover::Broken(record).announce(&self.ctx, &path);
        if self.previous.is_none() {
            self.previous = broken;
        }
        Ok(())
    }
}

/// What every operation needs.
#[derive(Debug, Clone)]
struct Ctx {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    job: String,
    holder: Holder,
    ttl: Duration,
    clock: Clock,
}

impl Ctx {
    fn expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let ttl = TimeDelta::from_std(self.ttl).unwrap_or(TimeDelta::MAX);
        now.checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// A fresh lease record for this run.
    fn record(&self, generation: u64) -> LeaseRecord {
        let now = self.clock.now();
        LeaseRecord {
            holder: self.holder.clone(),
            acquired_at: now,
            renewed_at: now,
            expires_at: self.expiry(now),
            generation,
            released: false,
        }
    }

    fn held(&self, path: Path, record: LeaseRecord) -> LeaseError {
        LeaseError::Held {
            job: self.job.clone(),
            path,
            holder: record.holder,
            expires_at: record.expires_at,
        }
    }

    fn lost(&self, path: &Path, by: Option<Holder>) -> LeaseError {
        LeaseError::Lost {
            job: self.job.clone(),
            path: path.clone(),
            by,
        }
    }

    fn leases_dir(&self) -> Path {
        self.prefix.clone().join(LEASES_DIR)
    }

    /// ConditionalUpdate's object.
    fn conditional_path(&self) -> Path {
        self.leases_dir().join(format!("{}.json", self.job))
    }

    /// Generations' folder.
    fn generations_dir(&self) -> Path {
        self.leases_dir().join(self.job.as_str())
    }

    /// Decides whether an existing lease object may be replaced (nothing is logged
    /// until the replacement is written: see [`Takeover::announce`]).
    fn may_take(
        &self,
        path: &Path,
        existing: Result<LeaseRecord, serde_json::Error>,
        breaking: &Breaking,
    ) -> Result<Takeover, LeaseError> {
        let existing = match existing {
            Ok(record) => record,
            Err(e) if *breaking == Breaking::Any => return Ok(Takeover::Corrupt(e)),
            Err(source) => {
                return Err(LeaseError::Corrupt {
                    path: path.clone(),
                    source,
                })
            }
        };
        Ok(if existing.released {
            Takeover::Released
        } else if existing.holder == self.holder {
            Takeover::Own
        } else if !existing.is_live(self.clock.now()) {
            Takeover::Expired(existing)
        } else if breaking.allows(&existing.holder) {
            Takeover::Broken(existing)
        } else {
            return Err(self.held(path.clone(), existing));
        })
    }

    /// A released lease record of this run, to break a lease at the other scheme's location.
    fn released_record(&self, generation: u64) -> LeaseRecord {
        let mut record = self.record(generation);
        record.expires_at = record.renewed_at;
        record.released = true;
        record
    }
}

/// Which live leases an acquisition may break.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Breaking {
    /// None.
    No,
    /// Any (`break_lease`); corrupt lease objects may be overwritten too.
    Any,
    /// Only this holder's: an acquisition that lost the race to break its lease
    /// because it renewed meanwhile keeps breaking it, but not another run's.
    Only(Holder),
}

impl Breaking {
    fn new(break_lease: bool) -> Self {
        if break_lease {
            Breaking::Any
        } else {
            Breaking::No
        }
    }

    fn allows(&self, holder: &Holder) -> bool {
        match self {
            Breaking::No => false,
            Breaking::Any => true,
            Breaking::Only(only) => only == holder,
        }
    }

    /// What may still be broken after another write replaced the lease object that
    /// this acquisition was about to replace (`takeover`).
    fn after_lost_race(&self, takeover: &Takeover) -> Breaking {
        match (self, takeover) {
            (Breaking::No, _) => Breaking::No,
            (_, Takeover::Broken(old)) => Breaking::Only(old.holder.clone()),
            _ => Breaking::No,
        }
    }
}

/// Why an existing lease object may be replaced.
#[derive(Debug)]
enum Takeover {
    /// There was none.
    Free,
    /// Its holder released it.
    Released,
    /// This very run holds it.
    Own,
    /// It expired without being released.
    Expired(LeaseRecord),
    /// It is live, and `break_lease` is set.
    Broken(LeaseRecord),
    /// It does not parse, and `break_lease` is set.
    Corrupt(serde_json::Error),
}

impl Takeover {
    /// Logs a takeover that happened (of the lease object at `path`); returns the
    /// holder it displaced, if any.
    fn announce(self, ctx: &Ctx, path: &Path) -> Option<Holder> {
        let job = &ctx.job;
        match self {
            Takeover::Free => None,
            Takeover::Released => {
                tracing::debug!(job = %job, path = %path, "took a released lease");
                None
            }
            Takeover::Own => {
                tracing::info!(job = %job, path = %path, "took this run's own lease again");
                None
            }
            Takeover::Corrupt(e) => {
                tracing::warn!(
                    job = %job, path = %path, error = %crate::error_chain::error_chain(&e),
                    "overwrote a lease object that was not a valid lease (--break-lease)"
                );
                None
            }
            Takeover::Expired(old) => {
                let h = &old.holder;
                tracing::warn!(
                    job = %job, path = %path, previous_host = %h.host, previous_pid = h.pid,
                    previous_run_id = %h.run_id, expired_at = %rfc3339(&old.expires_at),
                    "took over the lease of {h}, which expired at {} without being released",
                    rfc3339(&old.expires_at)
                );
                Some(old.holder)
            }
            Takeover::Broken(old) => {
                let h = &old.holder;
                tracing::warn!(
                    job = %job, path = %path, broken_host = %h.host, broken_pid = h.pid,
                    broken_run_id = %h.run_id, expires_at = %rfc3339(&old.expires_at),
                    "broke the live lease of {h}, valid until {} (--break-lease)",
                    rfc3339(&old.expires_at)
                );
                Some(old.holder)
            }
        }
    }
}

/// Scheme-specific state of a held lease.
#[derive(Debug)]
enum SchemeState {
    /// The object and the version this run wrote last.
    Conditional { path: Path, version: UpdateVersion },
    /// The generation object this run wrote last.
    Generations { path: Path },
}

/// The content of a lease object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseRecord {
    holder: Holder,
    acquired_at: DateTime<Utc>,
    renewed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    generation: u64,
    released: bool,
}

impl LeaseRecord {
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.released && now < self.expires_at
    }

    fn payload(&self) -> PutPayload {
        let json = serde_json::to_vec_pretty(self).expect("a lease record always serializes");
        PutPayload::from(json)
    }
}

/// A lease object as read: where, its content (or why it does not parse), its version.
struct Current {
    path: Path,
    record: Result<LeaseRecord, serde_json::Error>,
    version: UpdateVersion,
}

/// Reads a lease object; `None` if there is none.
async fn read(store: &dyn ObjectStore, path: &Path) -> Result<Option<Current>, LeaseError> {
    let result = match store.get(path).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(store_error("read", path)(e)),
    };
    let version = UpdateVersion {
        e_tag: result.meta.e_tag.clone(),
        version: result.meta.version.clone(),
    };
    let bytes = match result.bytes().await {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(store_error("read", path)(e)),
    };
    let record = serde_json::from_slice(&bytes);
    Ok(Some(Current {
        path: path.clone(),
        record,
        version,
    }))
}

/// Writes `record` at `path` with the given mode.
async fn put(
    store: &dyn ObjectStore,
    path: &Path,
    record: &LeaseRecord,
    mode: PutMode,
) -> object_store::Result<object_store::PutResult> {
    store
        .put_opts(path, record.payload(), PutOptions::from(mode))
        .await
}

fn store_error(op: &'static str, path: &Path) -> impl FnOnce(object_store::Error) -> LeaseError {
    let path = path.clone();
    move |e| LeaseError::Store {
        op,
        path,
        source: Box::new(e),
    }
}

/// Decides the scheme for [`LeaseScheme::Auto`]: a plain write of the probe
/// object, then a conditional update of it, then the same update again, now
/// on a stale version, which must fail: some S3-compatible servers accept
/// `If-Match` and ignore it. Such a store gets Generations when it refuses a
/// `Create` of the existing probe, and [`LeaseError::NoConditionalWrites`]
/// when it ignores both.
async fn probe(store: &dyn ObjectStore, prefix: &Path) -> Result<LeaseScheme, LeaseError> {
    let path = prefix.clone().join(LEASES_DIR).join(".probe");
    // Three different bodies: S3's e-tag is the MD5 of the body, so equal
    // bodies would make the stale version look current.
    let payload = |n: u8| PutPayload::from(format!("{{\"probe\":{n}}}\n").into_bytes());
    let written = store
        .put(&path, payload(0))
        .await
        .map_err(store_error("probe write", &path))?;
    let stale = UpdateVersion::from(written);
    let update = || PutOptions::from(PutMode::Update(stale.clone()));
    match store.put_opts(&path, payload(1), update()).await {
        Ok(_) => {}
        // Another run probed in between: updates work.
        Err(object_store::Error::Precondition { .. }) => return Ok(LeaseScheme::ConditionalUpdate),
        Err(object_store::Error::NotImplemented { .. }) => return Ok(LeaseScheme::Generations),
        Err(e) => return Err(store_error("probe conditional update", &path)(e)),
    }
    match store.put_opts(&path, payload(2), update()).await {
        Err(object_store::Error::Precondition { .. }) => return Ok(LeaseScheme::ConditionalUpdate),
        Ok(_) => {}
        Err(e) => return Err(store_error("probe conditional update", &path)(e)),
    }
    let create = PutOptions::from(PutMode::Create);
    match store.put_opts(&path, payload(3), create).await {
        Err(object_store::Error::AlreadyExists { .. }) => {
            tracing::warn!(
                path = %path,
                "the output store ignores If-Match (a stale conditional update succeeded): \
                 leases use one object per generation instead"
            );
            Ok(LeaseScheme::Generations)
        }
        Ok(_) => Err(LeaseError::NoConditionalWrites { path }),
        Err(e) => Err(store_error("probe create", &path)(e)),
    }
}

/// How many times an acquisition re-reads a lease that changed under it.
const ATTEMPTS: usize = 4;
