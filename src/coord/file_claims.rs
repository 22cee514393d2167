//! Scope claims on the `file://DIR` backend: the one-machine scope core ([`ScopeDir`]) rooted at
//! `DIR/.claims/<project>` (the project key escaped as lock names are; lock files never start with a
//! `.`, so the two never meet).
//!
//! A claim is a record held with `flock` for its lifetime, so a crashed claimant's claim is free at
//! once and a waiter sleeps in the kernel until the claim it waits for ends. Claim paths are stored as
//! `/`-rooted names (`a/b` as `/a/b`, the whole project as `/`), which the scope core compares
//! component by component. Unlike little-loops' claims, a claim of a parent process is not ignored:
//! the coordinator knows no process tree across hosts, so neither backend does.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::cancel::Cancel;
use super::claims::{ClaimBackend, ClaimGrant, ClaimInfo, ClaimPath, ClaimRequest, describe};
use super::file::{FileBackend, escape, rename};
use crate::error::{Error, Result};
use crate::lock::{CancelToken, HOLDER_RECORD_VERSION, Holder, LockMode, Wait, WaitControl, hostname};
use crate::scope::{self, Judge, JudgeAborted, Query, ScopeDir, ScopeEntry};

/// Longest escaped project key (a file name is at most 255 bytes).
const MAX_ESCAPED_PROJECT: usize = 248;

static NEXT_CLAIM: AtomicU64 = AtomicU64::new(1);

impl FileBackend {
    fn scope_dir(&self, project: &str) -> Result<ScopeDir> {
        let escaped = escape(project);
        if escaped.len() > MAX_ESCAPED_PROJECT {
            return Err(Error::InvalidName {
                what: "claim project",
                name: project.to_owned(),
                reason: "is too long for the file backend once escaped",
            });
        }
        ScopeDir::new(self.dir.join(".claims").join(escaped))
    }
}

/// The scope core's judgments for coordinator claims: every record here is flock-held (liveness is
/// the kernel's), paths are already normal, and no claim is anyone's parent loop.
struct CoordJudge;

impl Judge for CoordJudge {
    fn pid_alive(&mut self, pid: i64) -> std::result::Result<bool, JudgeAborted> {
        Ok(scope::pid_alive(pid))
    }

    fn is_ancestor(&mut self, _pid: i64) -> std::result::Result<bool, JudgeAborted> {
        Ok(false)
    }

    fn normalize(&mut self, path: &str) -> std::result::Result<String, JudgeAborted> {
        Ok(path.to_owned())
    }
}

fn rooted(paths: &[ClaimPath]) -> Vec<String> {
    paths.iter().map(|p| format!("/{}", p.components().join("/"))).collect()
}

fn info(project: &str, entry: &ScopeEntry) -> ClaimInfo {
    let r = &entry.record;
    ClaimInfo {
        project: project.to_owned(),
        paths: r
            .scope
            .iter()
            .map(|p| match p.trim_start_matches('/') {
                "" => ".".to_owned(),
                rest => rest.to_owned(),
            })
            .collect(),
        mode: if r.shared {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        },
        holder: Holder {
            pid: u32::try_from(r.pid).unwrap_or(0),
            host: hostname().to_owned(),
            since: r.started_at.clone(),
            purpose: (!r.loop_name.is_empty()).then(|| r.loop_name.clone()),
            version: HOLDER_RECORD_VERSION,
        },
    }
}

/// Runs `f` with a wait control that also ends when `cancel` is cancelled.
fn with_cancel<T>(
    what: &str,
    ctl: &mut WaitControl<'_>,
    cancel: Option<&Cancel>,
    f: impl FnOnce(&mut WaitControl<'_>) -> Result<T>,
) -> Result<T> {
    let token = Arc::new(CancelToken::new());
    let _hook = match cancel {
        Some(c) => {
            let t = Arc::clone(&token);
            Some(
                c.on_cancel(move || t.cancel())
                    .ok_or_else(|| Error::Cancelled { path: what.into() })?,
            )
        }
        None => None,
    };
    let mut inner = WaitControl {
        cancel: if cancel.is_some() { Some(&token) } else { ctl.cancel },
        interrupt_every: ctl.interrupt_every,
        on_interrupt: match ctl.on_interrupt.as_mut() {
            Some(f) => Some(&mut **f),
            None => None,
        },
    };
    f(&mut inner).map_err(|e| rename(e, what))
}

impl ClaimBackend for FileBackend {
    fn claim(
        &self,
        req: &ClaimRequest<'_>,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Box<dyn ClaimGrant>> {
        let started = Instant::now();
        let what = req.describe();
        let dir = self.scope_dir(req.project)?;
        fs::create_dir_all(dir.running_dir()).map_err(|e| Error::io("create directory", dir.running_dir(), e))?;
        let scope = rooted(req.paths);
        let shared = req.mode == LockMode::Shared;
        let name = format!("{}-{}", std::process::id(), NEXT_CLAIM.fetch_add(1, Ordering::Relaxed));
        let request = scope::ClaimRequest {
            loop_name: req.purpose.unwrap_or(""),
            scope: &scope,
            shared,
            ..scope::ClaimRequest::default()
        };
        let query = Query {
            scope: &scope,
            shared,
            ..Query::default()
        };
        let judge = &mut CoordJudge;
        with_cancel(&what, ctl, cancel, |ctl| {
            loop {
                if dir.acquire(&name, &request, judge, ctl)? {
                    return Ok(Box::new(FileClaim {
                        dir: dir.running_dir().to_path_buf(),
                        name: name.clone(),
                        released: false,
                    }) as Box<dyn ClaimGrant>);
                }
                let free = wait != Wait::Try && dir.wait_for_scope(&query, wait, judge, ctl)?;
                if !free {
                    let holder = dir
                        .find_conflict(&query, judge)?
                        .map(|e| Box::new(info(req.project, &e).holder));
                    return Err(if wait == Wait::Try {
                        Error::WouldBlock {
                            path: what.clone().into(),
                            holder,
                            held_by: None,
                        }
                    } else {
                        Error::Timeout {
                            path: what.clone().into(),
                            waited: started.elapsed(),
                            holder,
                            held_by: None,
                        }
                    });
                }
            }
        })
    }

    fn find_conflict(&self, project: &str, paths: &[ClaimPath], mode: LockMode) -> Result<Option<ClaimInfo>> {
        let scope = rooted(paths);
        let query = Query {
            scope: &scope,
            shared: mode == LockMode::Shared,
            ..Query::default()
        };
        Ok(self
            .scope_dir(project)?
            .find_conflict(&query, &mut CoordJudge)?
            .map(|e| info(project, &e)))
    }

    fn wait_for_scope(
        &self,
        project: &str,
        paths: &[ClaimPath],
        mode: LockMode,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<bool> {
        let scope = rooted(paths);
        let query = Query {
            scope: &scope,
            shared: mode == LockMode::Shared,
            ..Query::default()
        };
        let dir = self.scope_dir(project)?;
        with_cancel(&describe(project, paths), ctl, cancel, |ctl| {
            dir.wait_for_scope(&query, wait, &mut CoordJudge, ctl)
        })
    }

    fn live_claims(&self, project: &str) -> Result<Vec<ClaimInfo>> {
        let entries = self.scope_dir(project)?.list(&mut CoordJudge)?;
        Ok(entries.iter().map(|e| info(project, e)).collect())
    }
}

/// A claim held through the scope core: its record, flock-held by this process.
#[derive(Debug)]
struct FileClaim {
    dir: PathBuf,
    name: String,
    released: bool,
}

impl FileClaim {
    fn do_release(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.released, true) {
            return Ok(());
        }
        ScopeDir::new(&self.dir)?.release(&self.name).map(|_| ())
    }
}

impl Drop for FileClaim {
    fn drop(&mut self) {
        if let Err(e) = self.do_release() {
            log::warn!(target: "ferrolock::coord", "release of claim {} failed: {e}", self.name);
        }
    }
}

impl ClaimGrant for FileClaim {
    fn ensure_held(&self) -> Result<()> {
        // The kernel lock lives as long as this process holds the record open: nothing can take it.
        if ScopeDir::new(&self.dir)?.holds(&self.name)? {
            Ok(())
        } else {
            Err(Error::LockLost {
                name: self.name.clone(),
                reason: "the claim record is no longer held".into(),
            })
        }
    }

    fn is_lost(&self) -> bool {
        false
    }

    fn release(mut self: Box<Self>) -> Result<()> {
        self.do_release()
    }
}
