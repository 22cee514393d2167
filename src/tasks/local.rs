//! [`LocalQueue`]: task claims on one machine's filesystem.
//!
//! A queue is a state file (its tasks and their claims, in a [`TaskFormat`]) and a lock file per task
//! (`task_<id>.lock` in one directory). Every change is a read-modify-write of the state file under its
//! lock ([`StateFile`]: atomic, durable, the previous version kept as the backup). A change that claims
//! or releases a task also holds that task's lock, so a process that works on a task under its lock
//! (or a legacy process that takes only that lock) is excluded for that task.
//!
//! # Lock order
//!
//! **Nothing is ever waited for while the state lock is held.** Claiming or releasing one task waits
//! for the task's lock first, then for the state lock (both within the one deadline). Operations on
//! several tasks (`claim_many`, `claim_next`) take the state lock, read the file to learn which tasks
//! they would claim, then try each of those tasks' locks without waiting: a task whose lock is busy is
//! skipped. No cycle of waiters can form, and the state lock is held for one read-modify-write only.
//!
//! Those operations try only the task lock files that exist when they hold the state lock: a lock
//! that is held has a file, so every holder is excluded, at the cost of one scan of the lock
//! directory instead of one file creation per task.
//!
//! # Tidy-up
//!
//! Each operation removes, while nobody holds them, the lock files of tasks that can no longer be
//! claimed (claimed by someone, or gone), so they do not pile up. The lock files of the tasks the
//! operation is about stay (the next operation removes them), and so does that of a task that may
//! still be claimed: a process may have it open, about to lock it, and would then lock an unlinked
//! file while another locks a new one. For a task that cannot be claimed that split is harmless (both
//! find it taken).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::arrival::QueueWatch;
use super::model::{ClaimOutcome, Lookup, ReleaseOutcome, TaskFormat};
use crate::durable::{StateEdit, StateFile, StateFileOptions};
use crate::error::{Error, Result};
use crate::lock::{FileLock, LockOptions, Owner, Wait, WaitControl, remove_if_unheld};
use crate::names::{IdKind, validate_component};

/// Where a queue keeps its files.
#[derive(Clone, Debug)]
pub struct QueueLayout {
    /// The state file: the tasks and their claims.
    pub state: PathBuf,
    /// The lock every read-modify-write of the state file holds.
    pub state_lock: PathBuf,
    /// Where the previous version of the state file is kept (by hard link), if anywhere.
    pub backup: Option<PathBuf>,
    /// The directory of the per-task lock files, `task_<id>.lock`.
    pub task_locks: PathBuf,
}

impl QueueLayout {
    /// ferrolock's layout for a queue file: `<file>.lock`, `<file>.bak` and the directory
    /// `<file>.locks/`, all beside it.
    #[must_use]
    pub fn beside(state: impl Into<PathBuf>) -> Self {
        let state = state.into();
        let sibling = |suffix: &str| {
            let mut name = state.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            state.with_file_name(name)
        };
        Self {
            state_lock: sibling(".lock"),
            backup: Some(sibling(".bak")),
            task_locks: sibling(".locks"),
            state,
        }
    }
}

/// How a [`LocalQueue`] takes its locks.
#[derive(Clone, Debug)]
pub struct QueueOptions {
    /// Names the locks in their holder records: `"<purpose> task <id>"` and `"<purpose> state file"`.
    pub purpose: String,
    /// Permission bits of a new task lock file (the umask still applies).
    pub task_lock_mode: u32,
    /// Fail at once (`WouldDeadlock`) instead of waiting when this thread already holds a task's lock
    /// through another lock object.
    pub detect_deadlock: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            purpose: "task queue".to_owned(),
            task_lock_mode: 0o644,
            detect_deadlock: true,
        }
    }
}

/// A task queue on the local filesystem (see the module docs for the protocol).
#[derive(Debug)]
pub struct LocalQueue {
    layout: QueueLayout,
    state: StateFile,
    options: QueueOptions,
}

impl LocalQueue {
    /// A queue with this layout. Nothing is created until the first change.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for unusable paths (see [`StateFile::new`]).
    pub fn new(layout: QueueLayout, options: QueueOptions) -> Result<Self> {
        let state = StateFile::new(
            &layout.state,
            &StateFileOptions {
                lock_path: Some(layout.state_lock.clone()),
                backup_path: layout.backup.clone(),
                purpose: Some(format!("{} state file", options.purpose)),
                ..StateFileOptions::default()
            },
        )?;
        Ok(Self { layout, state, options })
    }

    /// The queue's files.
    #[must_use]
    pub fn layout(&self) -> &QueueLayout {
        &self.layout
    }

    /// The path of task `id`'s lock file.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if `id` cannot be part of a file name (`/`, NUL, `.`, `..`).
    pub fn task_lock_path(&self, id: &str) -> Result<PathBuf> {
        Ok(self.layout.task_locks.join(task_lock_name(id)?))
    }

    /// Claims task `id` for `who`: waits (within `wait`) for the task's lock, then for the state lock.
    ///
    /// # Errors
    /// `Timeout`/`WouldBlock` naming the lock that stayed busy, `InvalidName` for an id that cannot
    /// name a lock file, the format's error for a state file it cannot read, I/O errors.
    pub fn claim<F: TaskFormat + ?Sized>(
        &self,
        format: &mut F,
        id: &str,
        who: &F::Claimant,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
    ) -> Result<ClaimOutcome<F::Owner>, F::Error> {
        let _task = self.hold_waiting(id, wait, ctl)?;
        let mut session = self.session(wait, ctl)?;
        let Some(mut doc) = session.load(format, &[id])? else {
            return Ok(ClaimOutcome::NoQueue);
        };
        Ok(match format.lookup(&doc, id)? {
            Lookup::Missing => ClaimOutcome::Missing,
            Lookup::Claimed(owner) => ClaimOutcome::Taken(owner),
            Lookup::Free => {
                format.claim(&mut doc, id, who)?;
                session.commit(format, &doc)?;
                ClaimOutcome::Claimed
            }
        })
    }

    /// Claims every free task of `ids` for `who` in one read-modify-write (not all-or-nothing: the
    /// free ones are claimed). Waits only for the state lock; a task whose lock is busy is `Busy`.
    ///
    /// # Errors
    /// As [`claim`](Self::claim), for the state lock and file; per-task problems are outcomes.
    pub fn claim_many<F: TaskFormat + ?Sized>(
        &self,
        format: &mut F,
        ids: &[&str],
        who: &F::Claimant,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
    ) -> Result<Vec<ClaimOutcome<F::Owner>>, F::Error> {
        let mut session = self.session(wait, ctl)?;
        let Some(mut doc) = session.load(format, ids)? else {
            return Ok(ids.iter().map(|_| ClaimOutcome::NoQueue).collect());
        };
        let mut outcomes = Vec::with_capacity(ids.len());
        let mut changed = false;
        for &id in ids {
            outcomes.push(match format.lookup(&doc, id)? {
                Lookup::Missing => ClaimOutcome::Missing,
                Lookup::Claimed(owner) => ClaimOutcome::Taken(owner),
                Lookup::Free => match session.try_hold(id) {
                    Ok(true) => {
                        format.claim(&mut doc, id, who)?;
                        changed = true;
                        ClaimOutcome::Claimed
                    }
                    Ok(false) => ClaimOutcome::Busy,
                    Err(e) => ClaimOutcome::Failed(e),
                },
            });
        }
        if changed {
            session.commit(format, &doc)?;
        }
        Ok(outcomes)
    }

    /// Claims the first free task (in queue order) whose lock nobody holds, for `who`, and returns
    /// its id. If there is none and `wait_for_task`, waits (within `wait`, which also bounds the lock
    /// waits) for the state file to change, then looks again: a task added or released wakes the
    /// waiter at once. `None` if no task could be claimed in time.
    ///
    /// # Errors
    /// As [`claim`](Self::claim); `Cancelled`/`Interrupted` if `ctl` ends the wait.
    pub fn claim_next<F: TaskFormat + ?Sized>(
        &self,
        format: &mut F,
        who: &F::Claimant,
        wait: Wait,
        wait_for_task: bool,
        ctl: &mut WaitControl<'_>,
    ) -> Result<Option<String>, F::Error> {
        loop {
            // Watch first: a change made after the look below still wakes the wait after it.
            let watch = QueueWatch::new(&self.layout.state);
            {
                let mut session = self.session(wait, ctl)?;
                if let Some(mut doc) = session.load(format, &[])?
                    && let Some(free) = format.unclaimed(&doc)?
                {
                    for id in free {
                        match session.try_hold(&id) {
                            Ok(true) => {
                                format.claim(&mut doc, &id, who)?;
                                session.commit(format, &doc)?;
                                return Ok(Some(id));
                            }
                            Ok(false) => {}
                            Err(e) => log::warn!(target: "ferrolock::tasks", "skipping task {id:?}: {e}"),
                        }
                    }
                }
            }
            if !wait_for_task || !watch.wait_for_change(&self.layout.state, wait, ctl)? {
                return Ok(None);
            }
        }
    }

    /// Removes `who`'s claim on task `id` (anyone's with `force`): waits for the task's lock, then
    /// for the state lock.
    ///
    /// # Errors
    /// As [`claim`](Self::claim).
    pub fn release<F: TaskFormat + ?Sized>(
        &self,
        format: &mut F,
        id: &str,
        who: &F::Claimant,
        force: bool,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
    ) -> Result<ReleaseOutcome<F::Owner>, F::Error> {
        let _task = self.hold_waiting(id, wait, ctl)?;
        let mut session = self.session(wait, ctl)?;
        let Some(mut doc) = session.load(format, &[id])? else {
            return Ok(ReleaseOutcome::NoQueue);
        };
        let outcome = format.release(&mut doc, id, who, force)?;
        if matches!(outcome, ReleaseOutcome::Released) {
            session.commit(format, &doc)?;
        }
        Ok(outcome)
    }

    /// Changes the document under the state lock (adding or removing tasks, say): `change` gets the
    /// current document (`None` if there is no file) and returns the new one (`None`: write nothing)
    /// and a value for the caller.
    ///
    /// # Errors
    /// As [`claim`](Self::claim), or `change`'s error (nothing is written).
    pub fn modify<F: TaskFormat + ?Sized, T>(
        &self,
        format: &mut F,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        change: impl FnOnce(&mut F, Option<F::Doc>) -> Result<(Option<F::Doc>, T), F::Error>,
    ) -> Result<T, F::Error> {
        let mut session = self.session(wait, ctl)?;
        let doc = session.load(format, &[])?;
        let (doc, value) = change(format, doc)?;
        if let Some(doc) = doc {
            session.commit(format, &doc)?;
        }
        Ok(value)
    }

    /// The current document, read without a lock (every write is an atomic rename, so this is a
    /// complete version); `None` if there is no state file.
    ///
    /// # Errors
    /// The format's error, or I/O errors.
    pub fn read<F: TaskFormat + ?Sized>(&self, format: &mut F) -> Result<Option<F::Doc>, F::Error> {
        match self.state.read()? {
            Some(data) => Ok(Some(format.decode(&self.layout.state, &data)?)),
            None => Ok(None),
        }
    }

    fn task_lock(&self, id: &str) -> Result<FileLock> {
        FileLock::new(
            self.task_lock_path(id)?,
            &LockOptions {
                file_mode: self.options.task_lock_mode,
                purpose: Some(format!("{} task {id}", self.options.purpose)),
                detect_deadlock: self.options.detect_deadlock,
                ..LockOptions::default()
            },
        )
    }

    /// Task `id`'s lock, waited for (released when the returned lock is dropped).
    fn hold_waiting(&self, id: &str, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<FileLock> {
        let lock = self.task_lock(id)?;
        lock.acquire_as(Owner::current_thread(), wait, ctl)?;
        Ok(lock)
    }

    fn session(&self, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<Session<'_>> {
        Ok(Session {
            edit: self.state.edit_as(Owner::current_thread(), wait, ctl)?,
            held: Vec::new(),
            queue: self,
            lock_files: HashSet::new(),
        })
    }
}

/// `task_<id>.lock`, after checking that `id` cannot escape the lock directory.
fn task_lock_name(id: &str) -> Result<String> {
    Ok(format!("task_{}.lock", validate_component(IdKind::TaskId, id)?))
}

/// One read-modify-write: the state lock with the content read under it, and the task locks taken
/// without waiting. Fields drop in order: the state lock is released before the task locks.
struct Session<'q> {
    edit: StateEdit<'q>,
    held: Vec<FileLock>,
    queue: &'q LocalQueue,
    /// Names of the task lock files that existed when the state was read.
    lock_files: HashSet<String>,
}

impl Session<'_> {
    /// The document, and the tidy-up (sparing the lock files of `touching`).
    fn load<F: TaskFormat + ?Sized>(&mut self, format: &mut F, touching: &[&str]) -> Result<Option<F::Doc>, F::Error> {
        let Some(data) = self.edit.current() else {
            return Ok(None);
        };
        let doc = format.decode(&self.queue.layout.state, data)?;
        self.tidy(format, &doc, touching)?;
        Ok(Some(doc))
    }

    /// Writes `doc` and releases the state lock, then the task locks.
    fn commit<F: TaskFormat + ?Sized>(self, format: &mut F, doc: &F::Doc) -> Result<(), F::Error> {
        let data = format.encode(doc)?;
        let Session { edit, held, .. } = self;
        edit.commit(&data)?;
        drop(held);
        Ok(())
    }

    /// Takes task `id`'s lock without waiting, if its file exists (see the module docs): `false` if
    /// someone holds it. Something other than a regular file at its path (a planted symlink, say) is
    /// tried too, and refused with the lock's error.
    fn try_hold(&mut self, id: &str) -> Result<bool> {
        if !self.lock_files.contains(&task_lock_name(id)?) {
            return Ok(true);
        }
        let lock = self.queue.task_lock(id)?;
        match lock.acquire_as(Owner::current_thread(), Wait::Try, &mut WaitControl::default()) {
            Ok(_) => {
                self.held.push(lock);
                Ok(true)
            }
            Err(e) if e.is_contention() || matches!(e, Error::WouldDeadlock { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records which task lock files exist, and removes the unheld ones of tasks that cannot be
    /// claimed (see the module docs).
    fn tidy<F: TaskFormat + ?Sized>(&mut self, format: &mut F, doc: &F::Doc, keep: &[&str]) -> Result<(), F::Error> {
        let dir = &self.queue.layout.task_locks;
        let (names, regular) = lock_files(dir);
        self.lock_files = names;
        let candidates: Vec<&str> = regular
            .iter()
            .map(|name| &name[5..name.len() - 5])
            .filter(|id| !keep.contains(id))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let Some(free) = format.unclaimed(doc)? else {
            return Ok(());
        };
        let free: HashSet<&str> = free.iter().map(String::as_str).collect();
        for id in candidates.into_iter().filter(|id| !free.contains(id)) {
            let path = dir.join(format!("task_{id}.lock"));
            if let Err(e) = remove_if_unheld(&path) {
                log::warn!(target: "ferrolock::tasks", "could not remove unused lock file {}: {e}", path.display());
            }
        }
        Ok(())
    }
}

/// The names of the `task_*.lock` entries in `dir`, and those of them that are regular files (the
/// only ones the tidy-up may remove). A `dir` that is a symbolic link is not followed (one planted in a
/// shared directory would point the tidy-up at someone else's files), and one that cannot be listed
/// has none.
fn lock_files(dir: &Path) -> (HashSet<String>, Vec<String>) {
    let mut names = HashSet::new();
    let mut regular = Vec::new();
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return (names, regular);
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return (names, regular);
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let id = name.strip_prefix("task_").and_then(|n| n.strip_suffix(".lock"));
        if id.is_none_or(str::is_empty) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            regular.push(name.clone());
        }
        names.insert(name);
    }
    (names, regular)
}
