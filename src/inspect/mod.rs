//! Finding every lock under a set of directories, saying who holds each, and removing what nobody
//! uses: the core of `ferrolock status` and `ferrolock clean`.
//!
//! The trees may be writable by other users, and `clean` may run as root, so the walk is
//! descriptor-relative and cannot be steered outside a tree (see `walk.rs`), a removal re-checks the
//! file it removes in the directory it verified (see `candidate.rs`), and one bad entry is reported
//! as [`Skipped`] instead of ending the run.
//!
//! Each lock file costs one `openat`, one `fstat`, one non-blocking shared `flock` probe, a short read
//! and a close; `/proc/locks` (read once) adds shared holders, pids and waiters without touching the
//! files.

// Paths in log lines are written with `{:?}`, which escapes them: a newline in a file name cannot
// forge a log line.
#![allow(clippy::unnecessary_debug_formatting)]

mod candidate;
mod claims;
mod clean;
mod kinds;
mod proc;
mod tree;
mod walk;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

pub use clean::{CleanReport, Cleaned, clean};
pub use kinds::{
    LOCK_SUFFIX, LockKind, TODO2_DIR, TODO2_LOCKS_DIR, TODO2_STATE_LOCK_FILE, TODO2_TASK_LOCK_PREFIX, classify,
};
pub use tree::MAX_OPEN_DIRS;

use candidate::{Judged, MAX_LOCK_FILE_LEN, is_regular, open_at, read_head};
// The pieces `JobLocks::cleanup_stale` walks and removes with.
pub(crate) use candidate::{Outcome, Verdict, is_lock_content, remove_at};
use tree::{FileId, Tree};
pub(crate) use tree::{Refusal, open_dir_at};
use walk::Visitor;
pub(crate) use walk::{Kind as EntryKind, list};

use crate::error::Result;
use crate::lock::{Holder, held_exclusively};
use crate::scope::{ScopeRecord, pid_alive};

/// Directories never descended into: git's own lock files are `O_EXCL` markers, not flock locks, and
/// dependency trees only cost time.
const SKIPPED_DIRS: [&str; 2] = [".git", "node_modules"];

/// How often (in files looked at) [`Step::Progress`] is reported during a walk.
pub const PROGRESS_EVERY: usize = 256;

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
    /// The lock file (the root as given, then the names met on the way).
    pub path: PathBuf,
    /// What kind of lock it is.
    pub kind: LockKind,
    /// What it guards, in words ("job job-17", "todo2 task T-1"); names in it are as on disk.
    pub guards: OsString,
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
    /// Where it was found, its identity and what it held, for `clean` to find it again and re-check it.
    found: Found,
}

#[derive(Clone, Debug)]
struct Found {
    tree: usize,
    node: usize,
    name: OsString,
    judged: Judged,
    links: u64,
    /// The content is empty, a holder record or a claim record (never anything else is removed).
    lock_like: bool,
    /// The content is a ferrolock holder record: the file is known to be a flock lock file.
    recorded: bool,
    /// The bytes of a claim record (a stale one is removed only if they are unchanged).
    claim_bytes: Vec<u8>,
}

/// Something a walk could not look at (or `clean` could not remove), and why. The walk went on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The entry (a directory or a file).
    pub path: PathBuf,
    /// What was wrong with it, in words.
    pub reason: String,
}

/// What [`scan`] found.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// Every lock, sorted by path.
    pub locks: Vec<LockReport>,
    /// What could not be looked at.
    pub skipped: Vec<Skipped>,
}

/// Moments of a walk a caller may watch: to show progress, or to act at a precise point (tests drive
/// races to their window this way).
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// This many candidate files looked at so far: every [`PROGRESS_EVERY`] files, and once when the
    /// scan is complete (before `clean` removes anything).
    Progress(usize),
    /// About to enter this directory.
    Entering(&'a Path),
}

/// Everything under `roots` that is a lock, with its state.
///
/// # Errors
/// Only for a root that cannot be opened as a directory (missing, a symlink, a file, no permission);
/// anything wrong below a root is in [`Scan::skipped`].
pub fn scan(roots: &[PathBuf], on_step: &mut dyn FnMut(Step<'_>)) -> Result<Scan> {
    scan_trees(roots, on_step).map(|(_, scan)| scan)
}

fn scan_trees(roots: &[PathBuf], on_step: &mut dyn FnMut(Step<'_>)) -> Result<(Vec<Tree>, Scan)> {
    let table = proc::flock_table();
    let mut trees = roots
        .iter()
        .map(|root| Tree::open(root, false))
        .collect::<Result<Vec<_>>>()?;
    let mut scanner = Scanner {
        table: table.as_ref(),
        tree: 0,
        seen: 0,
        scan: Scan::default(),
        on_step,
    };
    for (i, tree) in trees.iter_mut().enumerate() {
        scanner.tree = i;
        walk::walk(tree, &mut scanner);
    }
    let Scanner {
        seen,
        mut scan,
        on_step,
        ..
    } = scanner;
    on_step(Step::Progress(seen));
    scan.locks.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((trees, scan))
}

struct Scanner<'a, 's> {
    table: Option<&'a HashMap<proc::FileKey, proc::FlockInfo>>,
    tree: usize,
    seen: usize,
    scan: Scan,
    on_step: &'s mut dyn FnMut(Step<'_>),
}

impl Visitor for Scanner<'_, '_> {
    fn descend(&mut self, name: &OsStr, path: &Path) -> bool {
        if SKIPPED_DIRS.iter().any(|s| name == *s) {
            return false;
        }
        (self.on_step)(Step::Entering(path));
        true
    }

    fn file(&mut self, tree: &Tree, name: &OsStr, path: PathBuf) {
        if !kinds::has_lock_name(name) {
            return;
        }
        self.seen += 1;
        if self.seen.is_multiple_of(PROGRESS_EVERY) {
            (self.on_step)(Step::Progress(self.seen));
        }
        let Ok(dir) = tree.dir() else { return };
        match inspect(dir, name, path, (self.tree, tree.node()), self.table) {
            Ok(Some(report)) => self.scan.locks.push(report),
            Ok(None) => {}
            Err(skipped) => self.scan.skipped.push(skipped),
        }
    }

    fn skip(&mut self, path: PathBuf, reason: String) {
        self.scan.skipped.push(Skipped { path, reason });
    }
}

/// Looks at the file `name` in `dir` (directory `at`: tree and node), shown as `path`: `None` if it is
/// not a lock, `Err` if it cannot be looked at.
fn inspect(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    path: PathBuf,
    at: (usize, usize),
    table: Option<&HashMap<proc::FileKey, proc::FlockInfo>>,
) -> Result<Option<LockReport>, Skipped> {
    let skipped = |path: PathBuf, reason: String| Skipped { path, reason };
    let Some((kind, guards)) = classify(&path) else {
        return Ok(None);
    };
    let (file, st) = match open_at(dir, name) {
        Ok(opened) => opened,
        // Vanished, or replaced by a symlink, since the directory was listed: not a lock to report.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ELOOP) => return Ok(None),
        Err(e) => return Err(skipped(path, format!("cannot be opened: {}", e.desc()))),
    };
    if !is_regular(&st) || st.st_size as u64 > MAX_LOCK_FILE_LEN {
        return Ok(None); // Cargo.lock and friends are data, not locks
    }
    let exclusive = held_exclusively(&file).map_err(|e| skipped(path.clone(), format!("cannot be probed: {e}")))?;
    let bytes = read_head(&file).map_err(|e| skipped(path.clone(), format!("cannot be read: {e}")))?;
    drop(file);
    let holder = Holder::parse(&bytes);
    let recorded = holder.is_some();
    let claim = (kind == LockKind::ScopeClaim)
        .then(|| ScopeRecord::parse(&bytes).ok())
        .flatten();
    let lock_like = is_lock_content(&bytes) || claim.is_some();
    if !lock_like && kind == LockKind::LockFile {
        return Ok(None); // an unknown `*.lock` with foreign content: somebody else's file, not a lock
    }
    let id = FileId::of(&st);
    let info = table
        .and_then(|t| t.get(&proc::key_of(id.dev, id.ino)))
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
    let claim_bytes = if claim.is_some() { bytes } else { Vec::new() };
    Ok(Some(LockReport {
        path,
        kind,
        guards,
        held,
        pids,
        waiters: info.waiters,
        holder,
        claim,
        stale,
        found: Found {
            tree: at.0,
            node: at.1,
            name: name.to_owned(),
            judged: Judged::of(&st),
            #[allow(clippy::useless_conversion, reason = "nlink_t is u32 on some targets")]
            links: u64::from(st.st_nlink),
            lock_like,
            recorded,
            claim_bytes,
        },
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
