//! `ferrolock clean`: removing what nobody uses, found by [`scan`](super::scan), each file in the
//! directory the scan walked (reached again descriptor by descriptor, every step checked) and only
//! after re-checking it (see `candidate.rs`).

use std::collections::{BTreeMap, HashSet};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use super::candidate::{self, Outcome, Verdict, is_lock_content, links_reason};
use super::claims::{StaleClaim, remove_stale, running_dir_of, take_sentinel};
use super::tree::{Refusal, Tree};
use super::{Held, LockKind, LockReport, Skipped, Step, proc, scan_trees};
use crate::error::Result;
use crate::lock::Holder;

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

/// What [`clean`] did.
#[derive(Clone, Debug, Default)]
pub struct CleanReport {
    /// What was removed (or, dry, would be), sorted by path.
    pub removed: Vec<Cleaned>,
    /// What could not be looked at or removed, and why.
    pub skipped: Vec<Skipped>,
}

/// Removes what nobody uses under `roots`: stale claim records (under the claim protocol's sentinel),
/// and lock files nobody holds, nobody has open and that hold nothing but a lock's content. Lock files
/// of the legacy layouts qualify by where they are; any other `*.lock` only if it carries a ferrolock
/// holder record. Never the little-loops sentinel, never a file with several hard links. Each removal
/// happens in the directory the scan walked (reached again descriptor by descriptor, each checked to
/// be the same directory) after re-checking the file. With `dry_run`, only says what it would remove.
///
/// # Errors
/// As [`scan`](super::scan).
pub fn clean(roots: &[PathBuf], dry_run: bool, on_step: &mut dyn FnMut(Step<'_>)) -> Result<CleanReport> {
    let (mut trees, scan) = scan_trees(roots, on_step)?;
    let (open, complete) = proc::open_files();
    if !complete {
        log::warn!(
            target: "ferrolock::inspect",
            "some processes' open files could not be read; lock files are removed only if unheld"
        );
    }
    let mut report = CleanReport {
        removed: Vec::new(),
        skipped: scan.skipped,
    };
    let mut unreachable = HashSet::new();
    let mut stale_claims: BTreeMap<(usize, usize), Vec<&LockReport>> = BTreeMap::new();
    for r in &scan.locks {
        if r.kind == LockKind::ScopeClaim {
            if r.stale.is_some() {
                match running_dir_of(&trees[r.found.tree], r.found.node) {
                    Some(running) => stale_claims.entry((r.found.tree, running)).or_default().push(r),
                    None => report.skipped.push(Skipped {
                        path: r.path.clone(),
                        reason: "its running directory is above the tree walked: stale claims are removed only \
                                 from a running directory the walk entered"
                            .to_owned(),
                    }),
                }
            }
            continue;
        }
        if !unused(r, &open) {
            continue;
        }
        if r.found.links != 1 {
            report.skipped.push(Skipped {
                path: r.path.clone(),
                reason: links_reason(r.found.links),
            });
            continue;
        }
        if !dry_run {
            let tree = &mut trees[r.found.tree];
            let judge = |_: &_, bytes: &[u8]| content_verdict(r.kind, bytes);
            let outcome = reach(tree, r.found.node, &mut unreachable, &mut report.skipped)
                .map(|dir| candidate::remove_at(dir, &r.found.name, Some(r.found.judged), &judge));
            match outcome {
                Some(Outcome::Removed) => {}
                Some(Outcome::Refused(reason)) => {
                    report.skipped.push(Skipped {
                        path: r.path.clone(),
                        reason,
                    });
                    continue;
                }
                // Taken, replaced or gone since the scan (its directory too): in use, not ours.
                Some(Outcome::Held | Outcome::Left) | None => continue,
            }
        }
        report.removed.push(Cleaned {
            path: r.path.clone(),
            kind: r.kind,
            reason: "unused lock file".to_owned(),
        });
    }
    for ((tree, running), claims) in stale_claims {
        let tree = &mut trees[tree];
        clean_claims(tree, running, &claims, dry_run, &mut unreachable, &mut report);
    }
    report.removed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Nobody holds it, waits for it or has it open, and it holds a lock's content (any other `*.lock`
/// only if a ferrolock holder wrote a record into it: an unknown empty one may be another tool's
/// `O_EXCL` marker, whose existence *is* its lock).
fn unused(r: &LockReport, open: &HashSet<(u64, u64)>) -> bool {
    r.kind.removable_when_unused()
        && r.held == Held::Free
        && r.found.lock_like
        && r.waiters == 0
        && (r.kind != LockKind::LockFile || r.found.recorded)
        // Someone has it open: it may be about to lock it without re-checking the inode.
        && !open.contains(&(r.found.judged.id.dev, r.found.judged.id.ino))
}

/// What a lock file of `kind` must still hold, re-read under the remover's lock, to be removed.
fn content_verdict(kind: LockKind, bytes: &[u8]) -> Verdict {
    let ok = if kind == LockKind::LockFile {
        Holder::parse(bytes).is_some()
    } else {
        is_lock_content(bytes)
    };
    if ok {
        Verdict::Remove
    } else {
        Verdict::Refuse("holds something other than a lock's content now".to_owned())
    }
}

/// The descriptor of directory `node` of `tree`, reached again and checked; a directory that cannot
/// be reached is reported once.
fn reach<'t>(
    tree: &'t mut Tree,
    node: usize,
    unreachable: &mut HashSet<PathBuf>,
    skipped: &mut Vec<Skipped>,
) -> Option<BorrowedFd<'t>> {
    if let Err((bad, refusal)) = tree.go_to(node) {
        let path = tree.path_of(bad);
        // Removed since the scan (a finished job's directory): nothing left to clean, nothing to report.
        if refusal != Refusal::Gone && unreachable.insert(path.clone()) {
            skipped.push(Skipped {
                path,
                reason: format!("changed since the scan: {refusal}"),
            });
        }
        return None;
    }
    tree.dir().ok()
}

fn clean_claims(
    tree: &mut Tree,
    running: usize,
    claims: &[&LockReport],
    dry_run: bool,
    unreachable: &mut HashSet<PathBuf>,
    report: &mut CleanReport,
) {
    let cleaned = |r: &LockReport| Cleaned {
        path: r.path.clone(),
        kind: r.kind,
        reason: format!("stale claim: {}", r.stale.as_deref().unwrap_or_default()),
    };
    if dry_run {
        report.removed.extend(claims.iter().map(|r| cleaned(r)));
        return;
    }
    let Some(dir) = reach(tree, running, unreachable, &mut report.skipped) else {
        return;
    };
    let _sentinel = match take_sentinel(dir) {
        Ok(sentinel) => sentinel,
        Err(why) => {
            let running = tree.path_of(running);
            log::info!(target: "ferrolock::inspect", "stale claims in {running:?} left: {why}");
            return;
        }
    };
    let stale: Vec<StaleClaim<'_>> = claims
        .iter()
        .map(|r| StaleClaim {
            node: r.found.node,
            name: &r.found.name,
            judged: r.found.judged,
            bytes: &r.found.claim_bytes,
        })
        .collect();
    for (r, outcome) in claims.iter().zip(remove_stale(tree, &stale)) {
        match outcome {
            Ok(Outcome::Removed) => report.removed.push(cleaned(r)),
            Ok(Outcome::Refused(reason)) | Err(reason) => report.skipped.push(Skipped {
                path: r.path.clone(),
                reason,
            }),
            Ok(Outcome::Held | Outcome::Left) => {}
        }
    }
}
