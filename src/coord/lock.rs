//! [`Coordinator`] and [`CoordLock`]: the backend-independent half of the coordinator.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};

use super::backend::{Backend, Fence, Grant, LockRequest, LockStatus, LostCallback};
use super::cancel::Cancel;
use super::file::FileBackend;
use super::names::validate_name;
use super::url::CoordUrl;
use crate::error::{Error, Result};
use crate::lock::{Acquired, LockMode, Owner, Wait, WaitControl};
use crate::sys::ForkLocal;

/// A connection to a coordination service: the factory of [`CoordLock`]s. Cheap to share (`Clone`).
#[derive(Clone, Debug)]
pub struct Coordinator {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    backend: Box<dyn Backend>,
    /// Which names each owner holds through which lock object, to refuse a wait on oneself (a forked
    /// child starts with none).
    held: ForkLocal<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    entries: Vec<(String, Owner, usize, LockMode)>,
}

impl Coordinator {
    /// Opens the coordinator named by `url` (`file://DIR` or `postgresql://...`).
    ///
    /// # Errors
    /// [`Error::Coordinator`] for a bad URL, an unreachable server, a schema that cannot be created.
    pub fn connect(url: &str) -> Result<Self> {
        let backend: Box<dyn Backend> = match CoordUrl::parse(url)? {
            CoordUrl::File { dir } => Box::new(FileBackend::new(dir)?),
            #[cfg(feature = "postgres")]
            CoordUrl::Postgres { url } => Box::new(super::pg::PgBackend::connect(&url)?),
            #[cfg(not(feature = "postgres"))]
            CoordUrl::Postgres { .. } => {
                return Err(Error::Coordinator {
                    op: "coordinator URL",
                    message: "this build of ferrolock has no PostgreSQL backend (cargo feature `postgres`)".into(),
                });
            }
        };
        Ok(Self::with_backend(backend))
    }

    /// A coordinator over any [`Backend`].
    #[must_use]
    pub fn with_backend(backend: Box<dyn Backend>) -> Self {
        Self {
            shared: Arc::new(Shared {
                backend,
                held: ForkLocal::new(Registry::default(), Registry::default),
            }),
        }
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> &dyn Backend {
        self.shared.backend.as_ref()
    }

    /// A lock object for `spec`. Nothing is contacted until it is acquired.
    #[must_use]
    pub fn lock(&self, spec: LockSpec) -> CoordLock {
        CoordLock {
            shared: Arc::clone(&self.shared),
            spec,
            object: NEXT_OBJECT.fetch_add(1, Ordering::Relaxed),
            // Grants inherited through fork belong to the parent (its sessions, its descriptors): the
            // child must neither use nor release them, so they are leaked, not dropped.
            state: ForkLocal::forgetting(State::default(), State::default),
        }
    }

    /// A scope claim object for `spec` (see [`super::claims`]). Nothing is contacted until it is acquired.
    #[must_use]
    pub fn claim(&self, spec: super::ClaimSpec) -> super::CoordClaim {
        super::CoordClaim::new(self.clone(), spec)
    }

    /// Every lock held or waited for right now.
    pub fn status(&self) -> Result<Vec<LockStatus>> {
        self.shared.backend.status()
    }

    /// Stores `value` for `name` with an explicit `token` (one a holder handed over): refused with
    /// [`Error::StaleToken`] unless `token` is the newest drawn for `name`.
    pub fn fenced_write(&self, name: &str, token: u64, value: &[u8]) -> Result<()> {
        self.shared.backend.fenced_write(validate_name(name)?, token, value)
    }

    /// A handle on the task queue `name` (see [`super::queue`]): its claims live as long as it does.
    ///
    /// # Errors
    /// An invalid queue name (the rules of lock names), backend failures.
    pub fn tasks(&self, name: &str) -> Result<super::CoordQueue> {
        let backend = self.shared.backend.task_queue(validate_name(name)?)?;
        Ok(super::CoordQueue::new(name.to_owned(), backend))
    }

    /// The last value a holder of `name` stored with [`CoordLock::fenced_write`], with its token.
    pub fn fenced_read(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>> {
        self.shared.backend.fenced_read(validate_name(name)?)
    }
}

/// What to lock: a name, a mode, a purpose, a callback for a lost lease.
#[derive(Clone)]
pub struct LockSpec {
    /// The lock's name (see [`validate_name`]).
    pub name: String,
    /// Exclusive (default) or shared.
    pub mode: LockMode,
    /// Shown in `status` and in other waiters' `Timeout` errors.
    pub purpose: Option<String>,
    /// Run (on a background thread) when a held grant is found lost.
    pub on_lost: Option<LostCallback>,
}

impl fmt::Debug for LockSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockSpec")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("purpose", &self.purpose)
            .field("on_lost", &self.on_lost.is_some())
            .finish()
    }
}

impl LockSpec {
    /// An exclusive lock on `name`, after checking the name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        validate_name(&name)?;
        Ok(Self {
            name,
            mode: LockMode::Exclusive,
            purpose: None,
            on_lost: None,
        })
    }
}

static NEXT_OBJECT: AtomicUsize = AtomicUsize::new(1);

/// A named lock from a [`Coordinator`], with `FileLock`'s semantics on every backend: re-entrant per
/// owner (a thread, or an id the caller picks), two lock objects exclude each other even in one
/// process, a wait on a lock the same owner holds through another object fails with
/// [`Error::WouldDeadlock`], and a forked child never releases its parent's grants.
pub struct CoordLock {
    shared: Arc<Shared>,
    spec: LockSpec,
    object: usize,
    state: ForkLocal<State>,
}

#[derive(Default)]
struct State {
    holds: Vec<Hold>,
}

struct Hold {
    owner: Owner,
    count: u32,
    grant: Box<dyn Grant>,
}

impl fmt::Debug for CoordLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordLock")
            .field("spec", &self.spec)
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

impl CoordLock {
    /// The lock's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Exclusive or shared.
    #[must_use]
    pub fn mode(&self) -> LockMode {
        self.spec.mode
    }

    /// The purpose given at creation.
    #[must_use]
    pub fn purpose(&self) -> Option<&str> {
        self.spec.purpose.as_deref()
    }

    /// Acquires for `owner`, waiting as `wait`, `ctl` and `cancel` allow. Re-entry only counts.
    ///
    /// # Errors
    /// As [`Backend::acquire`], plus [`Error::WouldDeadlock`] when `owner` holds the name through
    /// another lock object in a conflicting way.
    pub fn acquire_as(
        &self,
        owner: Owner,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Acquired> {
        {
            let mut st = self.state();
            if let Some(h) = st.holds.iter_mut().find(|h| h.owner == owner) {
                h.count = h.count.checked_add(1).ok_or_else(|| Error::InvalidName {
                    what: "re-entry count",
                    name: self.spec.name.clone(),
                    reason: "exceeds 2^32 nested acquisitions",
                })?;
                return Ok(Acquired::Reentered);
            }
        }
        if self.held_elsewhere(owner) {
            return Err(Error::WouldDeadlock {
                path: self.spec.name.clone().into(),
            });
        }
        let req = LockRequest {
            name: &self.spec.name,
            mode: self.spec.mode,
            purpose: self.spec.purpose.as_deref(),
            on_lost: self.spec.on_lost.clone(),
        };
        let grant = self.shared.backend.acquire(&req, wait, ctl, cancel)?;
        self.registry()
            .entries
            .push((self.spec.name.clone(), owner, self.object, self.spec.mode));
        self.state().holds.push(Hold { owner, count: 1, grant });
        Ok(Acquired::Fresh)
    }

    /// Acquires for the calling thread.
    pub fn acquire(&self, wait: Wait) -> Result<Acquired> {
        self.acquire_as(Owner::current_thread(), wait, &mut WaitControl::default(), None)
    }

    /// Releases one level of `owner`'s hold (all with `force`); `false`, doing nothing, if `owner`
    /// holds nothing here. A lost grant is released without error: there is nothing left to give back.
    pub fn release_as(&self, owner: Owner, force: bool) -> Result<bool> {
        let hold = {
            let mut st = self.state();
            let Some(i) = st.holds.iter().position(|h| h.owner == owner) else {
                return Ok(false);
            };
            if !force && st.holds[i].count > 1 {
                st.holds[i].count -= 1;
                return Ok(true);
            }
            st.holds.swap_remove(i)
        };
        self.unregister(owner);
        hold.grant.release()?;
        Ok(true)
    }

    /// Releases one level of the calling thread's hold.
    pub fn release(&self) -> Result<bool> {
        self.release_as(Owner::current_thread(), false)
    }

    /// `owner`'s fencing token (drawn on first use; see the module docs).
    ///
    /// # Errors
    /// [`Error::LockLost`] if `owner` does not hold the lock or it is lost.
    pub fn token_as(&self, owner: Owner) -> Result<u64> {
        self.with_grant(owner, |g| g.token())
    }

    /// The calling thread's fencing token.
    pub fn token(&self) -> Result<u64> {
        self.token_as(Owner::current_thread())
    }

    /// Checks with the backend that `owner` still holds the lock.
    ///
    /// # Errors
    /// [`Error::LockLost`] if not.
    pub fn ensure_held_as(&self, owner: Owner) -> Result<()> {
        self.with_grant(owner, |g| g.ensure_held())
    }

    /// Checks with the backend that the calling thread still holds the lock.
    pub fn ensure_held(&self) -> Result<()> {
        self.ensure_held_as(Owner::current_thread())
    }

    /// Stores `value` under the lock's name, fenced by `owner`'s token and written from the holder's
    /// own session: refused with [`Error::LockLost`] once the lock is lost (its lease ran out) and with
    /// [`Error::StaleToken`] if a newer token was drawn.
    pub fn fenced_write_as(&self, owner: Owner, value: &[u8]) -> Result<()> {
        self.with_grant(owner, |g| g.fenced_write(value, false))
    }

    /// Writes the run-once marker of the lock's name, fenced like [`fenced_write_as`](Self::fenced_write_as).
    pub(crate) fn mark_done_as(&self, owner: Owner, text: &[u8]) -> Result<()> {
        self.with_grant(owner, |g| g.fenced_write(text, true))
    }

    /// Replaces state `state` as `owner`, which must hold this lock (see [`super::CoordState`]).
    pub(crate) fn state_write_as(
        &self,
        owner: Owner,
        state: &str,
        value: Option<&[u8]>,
        fence: Option<&Fence>,
    ) -> Result<bool> {
        self.with_grant(owner, |g| g.state_write(state, value, fence))
    }

    /// [`fenced_write_as`](Self::fenced_write_as) for the calling thread.
    pub fn fenced_write(&self, value: &[u8]) -> Result<()> {
        self.fenced_write_as(Owner::current_thread(), value)
    }

    /// True if some owner in this process holds the lock through this object.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        !self.state().holds.is_empty()
    }

    /// How many times `owner` acquired without releasing.
    #[must_use]
    pub fn lock_count(&self, owner: Owner) -> u32 {
        self.state()
            .holds
            .iter()
            .find(|h| h.owner == owner)
            .map_or(0, |h| h.count)
    }

    /// Whether the backend already knows that `owner`'s grant is lost (no round trip).
    #[must_use]
    pub fn is_lost(&self, owner: Owner) -> bool {
        self.state()
            .holds
            .iter()
            .find(|h| h.owner == owner)
            .is_some_and(|h| h.grant.is_lost())
    }

    fn with_grant<T>(&self, owner: Owner, f: impl FnOnce(&dyn Grant) -> Result<T>) -> Result<T> {
        let st = self.state();
        match st.holds.iter().find(|h| h.owner == owner) {
            Some(h) => f(h.grant.as_ref()),
            None => Err(Error::LockLost {
                name: self.spec.name.clone(),
                reason: "not held by this owner".into(),
            }),
        }
    }

    fn held_elsewhere(&self, owner: Owner) -> bool {
        let reg = self.registry();
        reg.entries.iter().any(|(name, o, object, mode)| {
            *name == self.spec.name
                && *o == owner
                && *object != self.object
                && !(*mode == LockMode::Shared && self.spec.mode == LockMode::Shared)
        })
    }

    fn unregister(&self, owner: Owner) {
        let mut reg = self.registry();
        if let Some(i) = reg
            .entries
            .iter()
            .position(|(name, o, object, _)| *name == self.spec.name && *o == owner && *object == self.object)
        {
            reg.entries.swap_remove(i);
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.shared.held.lock()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl Drop for CoordLock {
    fn drop(&mut self) {
        let holds: Vec<Hold> = std::mem::take(&mut self.state().holds);
        for hold in holds {
            self.unregister(hold.owner);
            if let Err(e) = hold.grant.release() {
                log::warn!(target: "ferrolock::coord", "release of {:?} failed: {e}", self.spec.name);
            }
        }
    }
}
