//! Finding every lock under a set of directories, saying who holds each, and removing what nobody
//! uses: the core of `ferrolock status` and `ferrolock clean`.
//!
//! Each lock file costs one `lstat`, one open, one non-blocking shared `flock` probe, a short read and
//! a close; `/proc/locks` (read once) adds shared holders, pids and waiters without touching the files.

mod kinds;
mod proc;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

pub use kinds::{LockKind, classify};

use crate::error::{Error, Result};
use crate::lock::{Holder, Removal, held_exclusively, remove_if_unheld};
use crate::scope::{ScopeRecord, pid_alive};

/// Directories never descended into: git's own lock files are `O_EXCL` markers, not flock locks, and
/// dependency trees only cost time.
const SKIPPED_DIRS: [&str; 2] = [".git", "node_modules"];

/// The most a lock file may hold to count as one: empty, a holder record, or a claim record.
const MAX_LOCK_FILE_LEN: u64 = 64 * 1024;

/// Held by whom, as far as the kernel says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Nobody holds it.
    Free,
    /// One exclusive holder.
    Exclusive,
    /// One or more shared holders.
    Shared,
}

/// One lock found by [`scan`].
#[derive(Clone, Debug)]
pub struct LockReport {
    /// The lock file.
    pub path: PathBuf,
    /// What kind of lock it is.
    pub kind: LockKind,
    /// What it guards, in words ("job job-17", "todo2 task T-1").
    pub guards: String,
    /// Held or free.
    pub held: Held,
    /// Pids holding it, from `/proc/locks` (empty if unknown).
    pub pids: Vec<i32>,
    /// Requests blocked on it right now.
    pub waiters: u32,
    /// The exclusive holder's record, if it wrote one.
    pub holder: Option<Holder>,
    /// The claim, for a scope-claim record.
    pub claim: Option<ScopeRecord>,
    /// Why the record is stale (its holder is dead), if it is.
    pub stale: Option<String>,
    /// The file's device and inode (for `clean`).
    dev: u64,
    ino: u64,
    /// The content is empty, a holder record or a claim record (never anything else is removed).
    lock_like: bool,
    /// The content is a ferrolock holder record: the file is known to be a flock lock file.
    recorded: bool,
}

/// Everything under `roots` that is a lock, with its state. `progress` is called with the number of
/// files looked at so far, every 256 files.
pub fn scan(roots: &[PathBuf], progress: &mut dyn FnMut(usize)) -> Result<Vec<LockReport>> {
    let table = proc::flock_table();
    let mut found = Vec::new();
    let mut seen = 0usize;
    for root in roots {
        let meta = fs::symlink_metadata(root).map_err(|e| Error::io("stat", root, e))?;
        if !meta.is_dir() {
            return Err(Error::NotRegularFile {
                path: root.clone(),
                kind: "file (expected a directory)",
            });
        }
        walk(root, &mut |path| {
            seen += 1;
            if seen.is_multiple_of(256) {
                progress(seen);
            }
            if let Some(report) = inspect(path, table.as_ref())? {
                found.push(report);
            }
            Ok(())
        })?;
    }
    progress(seen);
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            log::warn!(target: "ferrolock::inspect", "cannot read {}: skipped", dir.display());
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        let path = entry.path();
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|s| entry.file_name() == *s) {
                walk(&path, visit)?;
            }
        } else if kind.is_file() && kinds::has_lock_name(&path) {
            visit(&path)?;
        }
    }
    Ok(())
}

fn inspect(
    path: &Path,
    table: Option<&std::collections::HashMap<proc::FileKey, proc::FlockInfo>>,
) -> Result<Option<LockReport>> {
    let Some((kind, guards)) = classify(path) else {
        return Ok(None);
    };
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        // Vanished, or replaced by a symlink, since the directory was read: not a lock to report.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            log::warn!(target: "ferrolock::inspect", "cannot open {}: skipped", path.display());
            return Ok(None);
        }
        Err(e) => return Err(Error::io("open lock file", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat lock file", path, e))?;
    if !meta.is_file() || meta.len() > MAX_LOCK_FILE_LEN {
        return Ok(None); // Cargo.lock and friends are data, not locks
    }
    let exclusive = held_exclusively(&file).map_err(|e| Error::io("probe lock", path, e))?;
    let mut bytes = Vec::new();
    let _ = (&file).take(MAX_LOCK_FILE_LEN).read_to_end(&mut bytes);
    drop(file);
    let holder = Holder::parse(&bytes);
    let holder_recorded = holder.is_some();
    let claim = (kind == LockKind::ScopeClaim)
        .then(|| ScopeRecord::parse(&bytes).ok())
        .flatten();
    let lock_like = bytes.iter().all(u8::is_ascii_whitespace) || holder.is_some() || claim.is_some();
    if !lock_like && kind == LockKind::LockFile {
        return Ok(None); // an unknown `*.lock` with foreign content: somebody else's file, not a lock
    }
    let info = table
        .and_then(|t| t.get(&proc::key_of(meta.dev(), meta.ino())))
        .cloned()
        .unwrap_or_default();
    let held = if exclusive {
        Held::Exclusive
    } else if info.shared.is_empty() {
        Held::Free
    } else {
        Held::Shared
    };
    // Only a record the kernel's holder wrote names the holder (see `Holder::written_by_holder`).
    let holder = holder.filter(|h| exclusive && h.written_by_holder(&info.exclusive));
    let pids = if exclusive { info.exclusive } else { info.shared };
    let stale = claim.as_ref().and_then(|c| stale_reason(c, exclusive));
    Ok(Some(LockReport {
        path: path.to_path_buf(),
        kind,
        guards,
        held,
        pids,
        waiters: info.waiters,
        holder,
        claim,
        stale,
        dev: meta.dev(),
        ino: meta.ino(),
        lock_like,
        recorded: holder_recorded,
    }))
}

/// A claim record is stale when ferrolock made it and nobody holds it (its holder died), or a legacy
/// process made it and that pid is gone (the legacy rule).
fn stale_reason(claim: &ScopeRecord, held: bool) -> Option<String> {
    if held {
        return None;
    }
    if claim.marked {
        return Some(format!("its holder (pid {}) no longer holds it", claim.pid));
    }
    (!pid_alive(claim.pid)).then(|| format!("pid {} is dead", claim.pid))
}

/// What [`clean`] did (or, dry, would do) with one file.
#[derive(Clone, Debug)]
pub struct Cleaned {
    /// The file.
    pub path: PathBuf,
    /// Its kind.
    pub kind: LockKind,
    /// Why it was (or would be) removed.
    pub reason: String,
}

/// Removes what nobody uses under `roots`: stale claim records (through the claim protocol, under the
/// sentinel), and lock files nobody holds, nobody has open and that hold nothing but a lock's content,
/// each through [`remove_if_unheld`] (taken exclusively, checked, unlinked while held). Lock files of
/// the legacy layouts qualify by where they are; any other `*.lock` only if it carries a ferrolock
/// holder record. Never the little-loops sentinel. With `dry_run`, only says what it would remove.
pub fn clean(roots: &[PathBuf], dry_run: bool, progress: &mut dyn FnMut(usize)) -> Result<Vec<Cleaned>> {
    let reports = scan(roots, progress)?;
    let (open, complete) = proc::open_files();
    if !complete {
        log::warn!(
            target: "ferrolock::inspect",
            "some processes' open files could not be read; lock files are removed only if unheld"
        );
    }
    let mut cleaned = Vec::new();
    let mut running_dirs: Vec<PathBuf> = Vec::new();
    for r in &reports {
        if r.kind == LockKind::ScopeClaim {
            if let Some(reason) = &r.stale {
                let running = running_dir_of(&r.path);
                if !running_dirs.contains(&running) {
                    running_dirs.push(running);
                }
                cleaned.push(Cleaned {
                    path: r.path.clone(),
                    kind: r.kind,
                    reason: format!("stale claim: {reason}"),
                });
            }
            continue;
        }
        if !r.kind.removable_when_unused() || r.held != Held::Free || !r.lock_like || r.waiters > 0 {
            continue;
        }
        if r.kind == LockKind::LockFile && !r.recorded {
            // An unknown empty `*.lock` may be another tool's O_EXCL marker, whose existence *is* its
            // lock: only files a ferrolock holder wrote a record into are known to be flock locks.
            continue;
        }
        if open.contains(&(r.dev, r.ino)) {
            continue; // someone has it open: it may be about to lock it without re-checking the inode
        }
        if dry_run || remove_if_unheld(&r.path)? == Removal::Removed {
            cleaned.push(Cleaned {
                path: r.path.clone(),
                kind: r.kind,
                reason: "unused lock file".to_owned(),
            });
        }
    }
    if !dry_run {
        for running in running_dirs {
            remove_stale_claims(&running, &mut cleaned)?;
        }
    }
    Ok(cleaned)
}

/// Lets the claim protocol remove stale records (it re-judges each under the sentinel, and keeps any
/// record that changed or became held meanwhile), then reports only those actually gone.
fn remove_stale_claims(running: &Path, cleaned: &mut Vec<Cleaned>) -> Result<()> {
    let dir = crate::scope::ScopeDir::new(running.to_path_buf())?;
    dir.list(&mut crate::scope::SystemJudge::new())?;
    cleaned.retain(|c| c.kind != LockKind::ScopeClaim || !c.path.starts_with(running) || !c.path.exists());
    Ok(())
}

fn running_dir_of(record: &Path) -> PathBuf {
    record
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == ".running"))
        .map_or_else(|| record.to_path_buf(), Path::to_path_buf)
}
