//! Generations: one object per change, `{prefix}/_leases/{job}/{generation:020}.json`,
//! written with `PutMode::Create` only. The lease is the highest generation.

use super::{
    put, read, store_error, Breaking, Ctx, Current, Lease, LeaseError, LeaseRecord, SchemeState,
    Takeover, ATTEMPTS,
};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode};

/// The object of one generation.
fn generation_path(dir: &Path, generation: u64) -> Path {
    dir.clone().join(format!("{generation:020}.json"))
}

/// The generation an object name stands for; `None` for other objects.
fn parse_generation(path: &Path) -> Option<u64> {
    let digits = path.filename()?.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The generations present, in ascending order.
async fn generations(ctx: &Ctx, dir: &Path) -> Result<Vec<u64>, LeaseError> {
    let listing = ctx
        .store
        .list_with_delimiter(Some(dir))
        .await
        .map_err(store_error("list", dir))?;
    let mut found: Vec<u64> = listing
        .objects
        .iter()
        .filter_map(|meta| parse_generation(&meta.location))
        .collect();
    found.sort_unstable();
    Ok(found)
}

async fn latest(ctx: &Ctx, dir: &Path) -> Result<Option<u64>, LeaseError> {
    Ok(generations(ctx, dir).await?.last().copied())
}

/// Creates the generation `record.generation`. `Ok(false)` when it already exists, or
/// when a higher generation appeared (a cleanup deleted this name, so creating it
/// succeeded although another run had moved on); the object just created is then
/// removed again.
async fn create(ctx: &Ctx, dir: &Path, record: &LeaseRecord) -> Result<bool, LeaseError> {
    let path = generation_path(dir, record.generation);
    match put(ctx.store.as_ref(), &path, record, PutMode::Create).await {
        Ok(_) => {}
        Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
        Err(e) => return Err(store_error("create", &path)(e)),
    }
    let latest = latest(ctx, dir).await;
    if matches!(latest, Ok(Some(g)) if g == record.generation) {
        return Ok(true);
    }
    if let Err(e) = ctx.store.delete(&path).await {
        tracing::debug!(path = %path, error = %crate::error_chain::error_chain(&e), "could not remove a superseded lease generation");
    }
    latest.map(|_| false)
}

/// Deletes the generations below `keep_from` (best effort: failures are logged).
async fn cleanup(ctx: &Ctx, dir: &Path, keep_from: u64) {
    let old = match generations(ctx, dir).await {
        Ok(found) => found.into_iter().take_while(|g| *g < keep_from),
        Err(e) => {
            tracing::debug!(path = %dir, error = %crate::error_chain::error_chain(&e), "could not list old lease generations");
            return;
        }
    };
    for generation in old {
        let path = generation_path(dir, generation);
        match ctx.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::debug!(path = %path, error = %crate::error_chain::error_chain(&e), "could not delete an old lease generation")
            }
        }
    }
}

/// Takes the lease, or says who holds it.
pub(super) async fn acquire(ctx: Ctx, break_lease: bool) -> Result<Lease, LeaseError> {
    let dir = ctx.generations_dir();
    let mut breaking = Breaking::new(break_lease);
    for _ in 0..ATTEMPTS {
        let (old_path, takeover, next) = match latest(&ctx, &dir).await? {
            None => (None, Takeover::Free, 1),
            Some(latest) => {
                let path = generation_path(&dir, latest);
                // Deleted since (a cleanup): list again.
                let Some(current) = read(ctx.store.as_ref(), &path).await? else {
                    continue;
                };
                let takeover = ctx.may_take(&path, current.record, &breaking)?;
                (Some(path), takeover, latest + 1)
            }
        };
        let record = ctx.record(next);
        if !create(&ctx, &dir, &record).await? {
            // Another write got there first: look again.
            breaking = breaking.after_lost_race(&takeover);
            continue;
        }
        let path = generation_path(&dir, next);
        let previous = takeover.announce(&ctx, old_path.as_ref().unwrap_or(&path));
        cleanup(&ctx, &dir, next - 1).await;
        let state = SchemeState::Generations { path };
        return Ok(Lease {
            ctx,
            record,
            state,
            previous,
        });
    }
    Err(LeaseError::Contended {
        job: ctx.job,
        path: dir,
    })
}

/// Replaces this run's lease record (`record`, last written at `path`) with `next`,
/// the next generation.
pub(super) async fn write(
    ctx: &Ctx,
    path: &mut Path,
    record: &mut LeaseRecord,
    mut next: LeaseRecord,
) -> Result<(), LeaseError> {
    let dir = ctx.generations_dir();
    for _ in 0..ATTEMPTS {
        if create(ctx, &dir, &next).await? {
            let kept = record.generation;
            *path = generation_path(&dir, next.generation);
            *record = next;
            cleanup(ctx, &dir, kept).await;
            return Ok(());
        }
        // A newer generation exists: another run's, or a write of this run that landed
        // although the store's answer was lost.
        match read_current(ctx).await? {
            Some(Current {
                record: Ok(current),
                path: seen,
                ..
            }) if current.holder == ctx.holder && !current.released => {
                next.generation = current.generation + 1;
                *path = seen;
                *record = current;
            }
            Some(Current {
                record: Ok(current),
                path: seen,
                ..
            }) if current.holder != ctx.holder => {
                return Err(ctx.lost(&seen, Some(current.holder)));
            }
            _ => return Err(ctx.lost(path, None)),
        }
    }
    Err(LeaseError::Contended {
        job: ctx.job.clone(),
        path: dir,
    })
}

/// The highest generation, if any.
pub(super) async fn read_current(ctx: &Ctx) -> Result<Option<Current>, LeaseError> {
    let dir = ctx.generations_dir();
    for _ in 0..ATTEMPTS {
        let Some(latest) = latest(ctx, &dir).await? else {
            return Ok(None);
        };
        // Deleted between the listing and the read (a cleanup): list again.
        if let Some(current) = read(ctx.store.as_ref(), &generation_path(&dir, latest)).await? {
            return Ok(Some(current));
        }
    }
    Err(LeaseError::Contended {
        job: ctx.job.clone(),
        path: dir,
    })
}

/// Breaks the live lease at the highest generation by creating the next one, released:
/// its holder's next renewal finds that generation taken.
pub(super) async fn break_live(ctx: &Ctx) -> Result<(), LeaseError> {
    let dir = ctx.generations_dir();
    for _ in 0..ATTEMPTS {
        let Some(latest) = latest(ctx, &dir).await? else {
            return Ok(());
        };
        if create(ctx, &dir, &ctx.released_record(latest + 1)).await? {
            cleanup(ctx, &dir, latest).await;
            return Ok(());
        }
    }
    Err(LeaseError::Contended {
        job: ctx.job.clone(),
        path: dir,
    })
}
