//! Removing stale little-loops claim records, descriptor-relative, under the claim protocol's rule.
//!
//! The rule is the one [`ScopeDir`](crate::scope::ScopeDir) applies when it meets a stale record:
//! remove it only while holding the running directory's sentinel (legacy writers rewrite records only
//! under it, and ferrolock publishes claims only under it), and only if it is still exactly the record
//! judged stale and still unheld. `ScopeDir` works by path; `clean` must not, so this reaches the
//! running directory and each record through the walked tree's verified descriptors instead.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;

use super::candidate::{Judged, Outcome, Verdict, is_regular, open_at, remove_at};
use super::tree::{FileId, Tree};
use crate::lock::{WaitControl, block_until_locked};
use crate::scope::{RUNNING_DIR, SENTINEL_NAME, ScopeRecord, pid_alive};
use crate::sys::{self, FlockOp};

/// How long `clean` waits for a busy sentinel (claimants hold it only to check and publish).
const SENTINEL_WAIT: Duration = Duration::from_millis(100);

/// The nearest directory named `.running` from `node` up to the root of `tree`, if the walk entered
/// it (a tree rooted below its running directory has none: its records are not removed).
pub(crate) fn running_dir_of(tree: &Tree, node: usize) -> Option<usize> {
    let mut at = node;
    loop {
        let (name, parent) = tree.name_of(at);
        if name == RUNNING_DIR {
            return Some(at);
        }
        at = parent?;
    }
}

/// One stale record to remove: where it is, what it held and was judged by.
#[derive(Debug)]
pub(crate) struct StaleClaim<'a> {
    pub(crate) node: usize,
    pub(crate) name: &'a OsStr,
    pub(crate) judged: Judged,
    pub(crate) bytes: &'a [u8],
}

/// The sentinel of the running directory that is `tree`'s current directory, held exclusively (it is
/// never created: a running directory without one has nobody to exclude, and a file created by this
/// user could lock legacy claimants out). `Err` says why it could not be had.
pub(crate) fn take_sentinel(running: BorrowedFd<'_>) -> Result<File, String> {
    let (file, st) = match open_at(running, OsStr::new(SENTINEL_NAME)) {
        Ok(opened) => opened,
        Err(Errno::ENOENT) => return Err(format!("it has no {SENTINEL_NAME} to exclude claimants with")),
        Err(e) => return Err(format!("its {SENTINEL_NAME} cannot be opened: {}", e.desc())),
    };
    if !is_regular(&st) {
        return Err(format!("its {SENTINEL_NAME} is not a regular file"));
    }
    let locked = match sys::flock(file.as_fd(), FlockOp::Exclusive, true) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::libc::EWOULDBLOCK) => {
            let deadline = Instant::now() + SENTINEL_WAIT;
            block_until_locked(
                file.as_fd(),
                FlockOp::Exclusive,
                Some(deadline),
                &mut WaitControl::default(),
            )
            .map_err(|_| format!("its {SENTINEL_NAME} stayed busy"))
        }
        Err(e) => Err(format!("its {SENTINEL_NAME} cannot be locked: {e}")),
    };
    locked?;
    // A sentinel replaced meanwhile excludes nobody: legacy claimants lock whatever the name holds.
    match fstatat(running, OsStr::new(SENTINEL_NAME), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(now) if FileId::of(&now) == FileId::of(&st) => Ok(file),
        _ => Err(format!("its {SENTINEL_NAME} was replaced")),
    }
}

/// Removes each record of `stale` that is still the same file with the same bytes, unheld, and (for
/// a legacy record) whose pid is still dead. The caller holds the sentinel. Returns, per record, the
/// outcome, in the order given.
pub(crate) fn remove_stale(tree: &mut Tree, stale: &[StaleClaim<'_>]) -> Vec<Result<Outcome, String>> {
    stale
        .iter()
        .map(|claim| {
            tree.go_to(claim.node)
                .map_err(|(node, refusal)| format!("{}: {refusal}", tree.path_of(node).display()))?;
            let dir = tree.dir().map_err(|r| r.to_string())?;
            let judge = |_: &_, now: &[u8]| {
                let still_stale = now == claim.bytes
                    && ScopeRecord::parse(now).is_ok_and(|record| record.marked || !pid_alive(record.pid));
                if still_stale { Verdict::Remove } else { Verdict::Keep }
            };
            Ok(remove_at(dir, claim.name, Some(claim.judged), &judge))
        })
        .collect()
}
