//! Scheduling stage, the job folder's watcher: a reload when a job file
//! changes, besides SIGHUP.
//!
//! Every few seconds it reads the name, modification time and size of each
//! `*.toml` in the folder; when any was added, removed or changed since the
//! last look, it asks the loop for a reload (the same message as SIGHUP), and
//! [`super::driver::reload_jobs`] does the rest: a new file is scheduled, a
//! removed or now invalid one is dropped. Polling needs no platform API and
//! works on network and container-mounted folders (a Kubernetes ConfigMap
//! swaps a symlink, which an inotify watch on the files would miss).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// How often the daemon looks at its job folder.
pub const JOBS_DIR_POLL: Duration = Duration::from_secs(3);

/// What is looked at of one job file: modification time and size.
pub type FileStamp = (Option<SystemTime>, u64);

/// The `*.toml` files of `dir` and their stamps (empty when `dir` cannot be
/// read: the reload then reports why). Symlinks are followed.
pub fn job_files(dir: &Path) -> BTreeMap<PathBuf, FileStamp> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let stamp = std::fs::metadata(&p)
                .map(|m| (m.modified().ok(), m.len()))
                .unwrap_or((None, 0));
            (p, stamp)
        })
        .collect()
}

/// The files added, removed or changed between two looks, for the log.
pub fn changed_files(
    before: &BTreeMap<PathBuf, FileStamp>,
    after: &BTreeMap<PathBuf, FileStamp>,
) -> Vec<PathBuf> {
    let removed = before.keys().filter(|p| !after.contains_key(*p));
    let added_or_changed = after
        .iter()
        .filter(|(p, stamp)| before.get(*p) != Some(stamp))
        .map(|(p, _)| p);
    let mut files: Vec<PathBuf> = removed.chain(added_or_changed).cloned().collect();
    files.sort();
    files
}

/// Looks at `dir` every `every` and sends a reload on `reload` after each
/// change; ends when the receiver is gone.
pub async fn watch_jobs_dir(dir: PathBuf, every: Duration, reload: mpsc::Sender<()>) {
    let mut last = job_files(&dir);
    loop {
        tokio::time::sleep(every).await;
        if reload.is_closed() {
            return;
        }
        let now = job_files(&dir);
        let changed = changed_files(&last, &now);
        if changed.is_empty() {
            continue;
        }
        tracing::info!(files = ?changed, "job files changed: reloading");
        last = now;
        if reload.send(()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(40);

    /// Waits for one reload, or for twice `ms` without one.
    async fn reloaded(rx: &mut mpsc::Receiver<()>, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), rx.recv())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn added_changed_and_removed_job_files_each_ask_for_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "x = 1\n").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let watcher = tokio::spawn(watch_jobs_dir(dir.path().to_path_buf(), EVERY, tx));
        assert!(!reloaded(&mut rx, 300).await, "nothing changed yet");

        std::fs::write(dir.path().join("b.toml"), "x = 1\n").unwrap();
        assert!(reloaded(&mut rx, 1000).await, "added");
        // A longer file: a change seen even within the clock's resolution.
        std::fs::write(dir.path().join("a.toml"), "x = [ broken\n").unwrap();
        assert!(reloaded(&mut rx, 1000).await, "changed (now invalid)");
        std::fs::remove_file(dir.path().join("b.toml")).unwrap();
        assert!(reloaded(&mut rx, 1000).await, "removed");

        std::fs::write(dir.path().join("notes.txt"), "not a job").unwrap();
        assert!(!reloaded(&mut rx, 300).await, "other files are not jobs");
        assert!(!reloaded(&mut rx, 300).await, "one change, one reload");
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), watcher)
            .await
            .expect("the watcher ends with its receiver")
            .unwrap();
    }

    #[test]
    fn changes_name_the_files() {
        let t = Some(SystemTime::UNIX_EPOCH);
        let before = BTreeMap::from([
            (PathBuf::from("a.toml"), (t, 1)),
            (PathBuf::from("b.toml"), (t, 1)),
            (PathBuf::from("c.toml"), (t, 1)),
        ]);
        let after = BTreeMap::from([
            (PathBuf::from("a.toml"), (t, 1)),
            (PathBuf::from("b.toml"), (t, 2)),
            (PathBuf::from("d.toml"), (t, 1)),
        ]);
        let names: Vec<PathBuf> = ["b.toml", "c.toml", "d.toml"].map(PathBuf::from).to_vec();
        assert_eq!(changed_files(&before, &after), names);
        assert!(changed_files(&after, &after).is_empty());
    }
}
