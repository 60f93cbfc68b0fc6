//! ConditionalUpdate: one lease object, `{prefix}/_leases/{job}.json`, created with
//! `PutMode::Create` and changed with `PutMode::Update` (the e-tag/version read last).

use super::{
    put, read, store_error, Breaking, Ctx, Current, Lease, LeaseError, LeaseRecord, SchemeState,
    Takeover, ATTEMPTS,
};
use object_store::path::Path;
use object_store::{PutMode, UpdateVersion};

/// Takes the lease object, or says who holds it.
pub(super) async fn acquire(ctx: Ctx, break_lease: bool) -> Result<Lease, LeaseError> {
    let path = ctx.conditional_path();
    let mut breaking = Breaking::new(break_lease);
    let store = ctx.store.as_ref();
    for _ in 0..ATTEMPTS {
        let record = ctx.record(1);
        match put(store, &path, &record, PutMode::Create).await {
            Ok(written) => return Ok(lease(ctx, path, record, written.into(), Takeover::Free)),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(store_error("create", &path)(e)),
        }
        // Removed since: create it again.
        let Some(current) = read(store, &path).await? else {
            continue;
        };
        let generation = current.record.as_ref().map_or(0, |r| r.generation);
        let takeover = ctx.may_take(&path, current.record, &breaking)?;
        let record = ctx.record(generation + 1);
        match put(store, &path, &record, PutMode::Update(current.version)).await {
            Ok(written) => return Ok(lease(ctx, path, record, written.into(), takeover)),
            // Changed meanwhile: look again.
            Err(object_store::Error::Precondition { .. }) => {
                breaking = breaking.after_lost_race(&takeover);
            }
            Err(e) => return Err(store_error("conditional update", &path)(e)),
        }
    }
    Err(LeaseError::Contended { job: ctx.job, path })
}

fn lease(
    ctx: Ctx,
    path: Path,
    record: LeaseRecord,
    version: UpdateVersion,
    takeover: Takeover,
) -> Lease {
    let previous = takeover.announce(&ctx, &path);
    Lease {
        ctx,
        record,
        state: SchemeState::Conditional { path, version },
        previous,
    }
}

/// Replaces this run's lease record (`record`, last written as `version`) with `next`.
pub(super) async fn write(
    ctx: &Ctx,
    path: &Path,
    version: &mut UpdateVersion,
    record: &mut LeaseRecord,
    next: LeaseRecord,
) -> Result<(), LeaseError> {
    let store = ctx.store.as_ref();
    for _ in 0..ATTEMPTS {
        match put(store, path, &next, PutMode::Update(version.clone())).await {
            Ok(written) => {
                *version = written.into();
                *record = next;
                return Ok(());
            }
            Err(object_store::Error::Precondition { .. }) => {}
            Err(e) => return Err(store_error("conditional update", path)(e)),
        }
        // Changed since this run's last write: by another run, or by a write of this
        // run that landed although the store's answer was lost.
        match read(store, path).await? {
            Some(Current {
                record: Ok(current),
                version: seen,
                ..
            }) if current.holder == ctx.holder && !current.released => {
                *version = seen;
            }
            Some(Current {
                record: Ok(current),
                ..
            }) if current.holder != ctx.holder => {
                return Err(ctx.lost(path, Some(current.holder)));
            }
            _ => return Err(ctx.lost(path, None)),
        }
    }
    Err(LeaseError::Contended {
        job: ctx.job.clone(),
        path: path.clone(),
    })
}

/// The lease object, if any (to check it from the Generations scheme).
pub(super) async fn read_current(ctx: &Ctx) -> Result<Option<Current>, LeaseError> {
    read(ctx.store.as_ref(), &ctx.conditional_path()).await
}

/// Breaks the live lease `broken` (read from the lease object) by overwriting it with a
/// released record: its holder's next conditional update fails.
pub(super) async fn break_live(ctx: &Ctx, broken: &LeaseRecord) -> Result<(), LeaseError> {
    let path = ctx.conditional_path();
    let record = ctx.released_record(broken.generation + 1);
    put(ctx.store.as_ref(), &path, &record, PutMode::Overwrite)
        .await
        .map_err(store_error("overwrite", &path))?;
    Ok(())
}
