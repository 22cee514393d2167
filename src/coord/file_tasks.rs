//! Task queues on the `file://DIR` backend: the one-machine [`LocalQueue`], rooted at
//! `DIR/.tasks/<escaped name>/` (`queue.json` with its lock, backup and task locks), plus a lock file
//! per claim that ties the claim to its claimant's process.
//!
//! A claim records a `session` (a nonce unique to the claim) beside its claimant's name, and the
//! claiming handle keeps `claims/<session>.lock` `flock`ed for as long as it holds the claim. The lock
//! is taken before the claim is written and let go after the claim is removed, so a recorded claim
//! whose lock nobody holds belongs to a process that died (or a handle that was closed): it counts as
//! free. Every decision about a claim is made under the queue's state lock, where the lock files of
//! dead claims are also removed; `tasks()` reads without that lock and only probes.
//!
//! A waiter in `claim_next` is woken by a change of the queue file (an add, a release); a claim freed
//! by its claimant's death is found by the next look, not pushed to a sleeping waiter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::cancel::Cancel;
use super::queue::QueueBackend;
use crate::error::{Error, Result};
use crate::lock::{CancelToken, FileLock, LockOptions, LockState, Owner, Wait, WaitControl, probe, remove_if_unheld};
use crate::tasks::{
    ClaimOutcome, ClaimRecord, Entry, LocalQueue, Lookup, NativeDoc, NativeFormat, QueueLayout, QueueOptions,
    ReleaseOutcome, TaskFormat,
};

/// The claim field that names the claim's lock file.
const SESSION_FIELD: &str = "session";

static NEXT_CLAIM: AtomicU64 = AtomicU64::new(1);

/// One claim this handle holds: its session nonce and the lock that keeps it alive.
#[derive(Debug)]
struct Held {
    session: String,
    lock: FileLock,
    owner: Owner,
    path: PathBuf,
}

impl Held {
    /// Lets go of the claim's lock and removes its file (the claim is no longer recorded, or is dead).
    fn end(self) {
        if let Err(e) = self.lock.release_as(self.owner, true) {
            log::warn!(target: "ferrolock::coord", "could not release claim lock {}: {e}", self.path.display());
        }
        drop(self.lock);
        if let Err(e) = remove_if_unheld(&self.path) {
            log::debug!(target: "ferrolock::coord", "claim lock {} stays: {e}", self.path.display());
        }
    }
}

/// A queue of the file backend.
#[derive(Debug)]
pub(crate) struct FileQueue {
    queue: LocalQueue,
    claims_dir: PathBuf,
    purpose: String,
    held: Mutex<HashMap<String, Held>>,
}

impl FileQueue {
    /// The queue `name` (escaped as `escaped`) under the coordinator directory `dir`.
    pub(crate) fn open(dir: &Path, name: &str, escaped: &str) -> Result<Self> {
        let root = dir.join(".tasks").join(escaped);
        let purpose = format!("task queue {name}");
        let queue = LocalQueue::new(
            QueueLayout::beside(root.join("queue.json")),
            QueueOptions {
                purpose: purpose.clone(),
                ..QueueOptions::default()
            },
        )?;
        Ok(Self {
            queue,
            claims_dir: root.join("claims"),
            purpose,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn format(&self, mine: Option<String>) -> LiveFormat {
        LiveFormat {
            claims_dir: self.claims_dir.clone(),
            purpose: self.purpose.clone(),
            pending: None,
            mine,
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the claim `format` made for `id` if `claimed`, and ends it otherwise.
    fn settle(&self, format: &mut LiveFormat, id: Option<&str>) {
        let pending = format.pending.take();
        match (pending, id) {
            (Some(held), Some(id)) => {
                if let Some(old) = self.held().insert(id.to_owned(), held) {
                    old.end();
                }
            }
            (Some(held), None) => held.end(),
            (None, _) => {}
        }
    }
}

impl QueueBackend for FileQueue {
    fn add(&self, ids: &[&str], wait: Wait, ctl: &mut WaitControl<'_>) -> Result<usize> {
        let state = self.queue.layout().state.clone();
        self.queue.modify(&mut NativeFormat, wait, ctl, |_, doc| {
            let mut doc = doc.unwrap_or_default();
            let added = doc.add(ids.iter().copied());
            // Written when something changed, and the first time (an empty queue is a queue).
            Ok(((added > 0 || !state.exists()).then_some(doc), added))
        })
    }

    fn remove(&self, ids: &[&str], wait: Wait, ctl: &mut WaitControl<'_>) -> Result<usize> {
        let removed = self.queue.modify(&mut NativeFormat, wait, ctl, |_, doc| {
            let Some(mut doc) = doc else { return Ok((None, 0)) };
            let removed = doc.remove(ids);
            Ok(((removed > 0).then_some(doc), removed))
        })?;
        // A removed task's claim is gone with it.
        let mut held = self.held();
        for id in ids {
            if let Some(h) = held.remove(*id) {
                h.end();
            }
        }
        Ok(removed)
    }

    fn claim(&self, id: &str, by: &str, wait: Wait, ctl: &mut WaitControl<'_>) -> Result<ClaimOutcome<ClaimRecord>> {
        let mut format = self.format(None);
        let outcome = self.queue.claim(&mut format, id, by, wait, ctl);
        let claimed = matches!(outcome, Ok(ClaimOutcome::Claimed));
        self.settle(&mut format, claimed.then_some(id));
        outcome
    }

    fn claim_next(
        &self,
        by: &str,
        wait: Wait,
        block: bool,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Option<String>> {
        let token = Arc::new(CancelToken::new());
        let _hook = match cancel {
            Some(c) => {
                let t = Arc::clone(&token);
                Some(c.on_cancel(move || t.cancel()).ok_or_else(|| Error::Cancelled {
                    path: self.purpose.clone().into(),
                })?)
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
        let mut format = self.format(None);
        let outcome = self.queue.claim_next(&mut format, by, wait, block, &mut inner);
        let claimed = outcome.as_ref().ok().and_then(Option::as_deref);
        self.settle(&mut format, claimed);
        outcome
    }

    fn release(
        &self,
        id: &str,
        by: &str,
        force: bool,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
    ) -> Result<ReleaseOutcome<ClaimRecord>> {
        let mine = self.held().get(id).map(|h| h.session.clone());
        let mut format = self.format(mine.clone());
        let outcome = self.queue.release(&mut format, id, by, force, wait, ctl)?;
        // The claim's lock is let go only once its record is gone (or was not ours any more).
        if mine.is_some()
            && matches!(
                outcome,
                ReleaseOutcome::Released | ReleaseOutcome::Lost | ReleaseOutcome::Missing | ReleaseOutcome::NoQueue
            )
            && let Some(h) = self.held().remove(id)
        {
            h.end();
        }
        Ok(outcome)
    }

    fn tasks(&self) -> Result<Vec<Entry<ClaimRecord>>> {
        let mut format = self.format(None);
        match self.queue.read(&mut format)? {
            Some(doc) => format.tasks(&doc),
            None => Ok(Vec::new()),
        }
    }

    fn close(&self) -> Result<()> {
        let held: Vec<Held> = self.held().drain().map(|(_, h)| h).collect();
        for h in held {
            h.end();
        }
        Ok(())
    }
}

impl Drop for FileQueue {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// ferrolock's own queue file, where a claim counts only while its claim lock is held (see the
/// module docs). Every method but [`tasks`](TaskFormat::tasks) runs under the queue's state lock.
struct LiveFormat {
    claims_dir: PathBuf,
    purpose: String,
    /// The claim made by [`claim`](TaskFormat::claim), for the caller to keep or end.
    pending: Option<Held>,
    /// For a release: the session of this handle's claim on the task, if it has one.
    mine: Option<String>,
}

impl LiveFormat {
    fn lock_path(&self, session: &str) -> PathBuf {
        self.claims_dir.join(format!("{session}.lock"))
    }

    /// Whether task `id`'s recorded claim has a live claimant. A claim without a session (written by
    /// something else than a coordinator queue) counts as live: it stays until released.
    fn alive(&self, doc: &NativeDoc, id: &str) -> bool {
        let Some(session) = doc.claim_field(id, SESSION_FIELD) else {
            return true;
        };
        if session.contains('/') || session.starts_with('.') {
            return true; // not one of ours: never used as a path
        }
        match probe(&self.lock_path(session)) {
            Ok(LockState::Held(_)) => true,
            Ok(LockState::Free | LockState::Missing) => false,
            Err(e) => {
                log::warn!(target: "ferrolock::coord", "cannot tell whether the claim on {id:?} is alive: {e}");
                true
            }
        }
    }

    /// Removes the lock file of `id`'s dead claim (called under the state lock, so no claimant can be
    /// taking it).
    fn bury(&self, doc: &NativeDoc, id: &str) {
        if let Some(session) = doc.claim_field(id, SESSION_FIELD)
            && !session.contains('/')
            && !session.starts_with('.')
        {
            let _ = remove_if_unheld(&self.lock_path(session));
        }
    }

    fn live_lookup(&mut self, doc: &NativeDoc, id: &str) -> Result<Lookup<ClaimRecord>> {
        Ok(match NativeFormat.lookup(doc, id)? {
            Lookup::Claimed(_) if !self.alive(doc, id) => Lookup::Free,
            other => other,
        })
    }
}

impl TaskFormat for LiveFormat {
    type Doc = NativeDoc;
    type Claimant = str;
    type Owner = ClaimRecord;
    type Error = Error;

    fn decode(&mut self, path: &Path, data: &[u8]) -> Result<NativeDoc> {
        NativeFormat.decode(path, data)
    }

    fn encode(&mut self, doc: &NativeDoc) -> Result<Vec<u8>> {
        NativeFormat.encode(doc)
    }

    fn lookup(&mut self, doc: &NativeDoc, id: &str) -> Result<Lookup<ClaimRecord>> {
        self.live_lookup(doc, id)
    }

    fn unclaimed(&mut self, doc: &NativeDoc) -> Result<Option<Vec<String>>> {
        let ids: Vec<String> = doc
            .claims()
            .filter(|(id, claim)| claim.is_none() || !self.alive(doc, id))
            .map(|(id, _)| id.to_owned())
            .collect();
        Ok(Some(ids))
    }

    fn claim(&mut self, doc: &mut NativeDoc, id: &str, who: &str) -> Result<()> {
        // A dead claim is replaced: its lock file goes with it.
        self.bury(doc, id);
        doc.unclaim(id);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let n = NEXT_CLAIM.fetch_add(1, Ordering::Relaxed);
        let session = format!("{}-{nanos}-{n}", std::process::id());
        let path = self.lock_path(&session);
        let lock = FileLock::new(
            &path,
            &LockOptions {
                purpose: Some(format!("{} claim {id} by {who}", self.purpose)),
                detect_deadlock: false,
                create_dirs: true,
                ..LockOptions::default()
            },
        )?;
        let owner = Owner::from_raw((1 << 62) + n);
        // A fresh file nobody else knows: taken at once unless something is badly wrong.
        lock.acquire_as(owner, Wait::Try, &mut WaitControl::default())?;
        NativeFormat.claim(doc, id, who)?;
        doc.set_claim_field(id, SESSION_FIELD, &session);
        if let Some(old) = self.pending.replace(Held {
            session,
            lock,
            owner,
            path,
        }) {
            old.end();
        }
        Ok(())
    }

    fn release(
        &mut self,
        doc: &mut NativeDoc,
        id: &str,
        who: &str,
        force: bool,
    ) -> Result<ReleaseOutcome<ClaimRecord>> {
        let recorded = doc.claim_field(id, SESSION_FIELD).map(str::to_owned);
        if let Some(mine) = &self.mine
            && recorded.as_deref() != Some(mine.as_str())
        {
            return Ok(match NativeFormat.lookup(doc, id)? {
                Lookup::Missing => ReleaseOutcome::Missing,
                _ => ReleaseOutcome::Lost,
            });
        }
        match self.live_lookup(doc, id)? {
            Lookup::Missing => Ok(ReleaseOutcome::Missing),
            // A dead claim is no claim.
            Lookup::Free => Ok(ReleaseOutcome::NotClaimed),
            Lookup::Claimed(owner) if owner.by != who && !force => Ok(ReleaseOutcome::ClaimedByOther(owner)),
            Lookup::Claimed(_) => {
                doc.unclaim(id);
                Ok(ReleaseOutcome::Released)
            }
        }
    }

    fn tasks(&mut self, doc: &NativeDoc) -> Result<Vec<Entry<ClaimRecord>>> {
        Ok(doc
            .claims()
            .map(|(id, claim)| Entry {
                id: id.to_owned(),
                owner: claim.filter(|_| self.alive(doc, id)),
            })
            .collect())
    }
}
