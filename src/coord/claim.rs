//! [`CoordClaim`]: a scope claim from a [`Coordinator`](super::Coordinator), written once above the
//! backends (re-entry per owner, waits on oneself refused, fork safety).

use std::fmt;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::backend::LostCallback;
use super::cancel::Cancel;
use super::claims::{ClaimGrant, ClaimPath, ClaimRequest, describe, minimal_set, sets_conflict, validate_project};
use super::lock::Coordinator;
use crate::error::{Error, Result};
use crate::lock::{Acquired, LockMode, Owner, Wait, WaitControl};
use crate::sys::ForkLocal;

/// What to claim: a project, a set of paths, a mode, a purpose, a callback for a lost lease.
#[derive(Clone)]
pub struct ClaimSpec {
    /// The project key.
    pub project: String,
    /// The paths, normalised into a minimal set.
    pub paths: Vec<ClaimPath>,
    /// Exclusive (default) or shared.
    pub mode: LockMode,
    /// Shown to others.
    pub purpose: Option<String>,
    /// Run (on a background thread) when a held claim is found lost.
    pub on_lost: Option<LostCallback>,
}

impl fmt::Debug for ClaimSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimSpec")
            .field("project", &self.project)
            .field("paths", &self.paths)
            .field("mode", &self.mode)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl ClaimSpec {
    /// An exclusive claim of `paths` (see [`ClaimPath::parse`]) in `project`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad project or path, or an empty set.
    pub fn new(project: &str, paths: &[&str], root: Option<&str>) -> Result<Self> {
        validate_project(project)?;
        let parsed = paths
            .iter()
            .map(|p| ClaimPath::parse(p, root))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            project: project.to_owned(),
            paths: minimal_set(parsed)?,
            mode: LockMode::Exclusive,
            purpose: None,
            on_lost: None,
        })
    }

    /// `project:a/b, c`.
    #[must_use]
    pub fn describe(&self) -> String {
        describe(&self.project, &self.paths)
    }
}

/// Claims this process holds, per backend URL and owner, to refuse a wait on oneself.
struct HeldEntry {
    url: String,
    project: String,
    paths: Vec<ClaimPath>,
    mode: LockMode,
    owner: Owner,
    object: usize,
}

static HELD: ForkLocal<Vec<HeldEntry>> = ForkLocal::new(Vec::new(), Vec::new);
static NEXT_OBJECT: AtomicUsize = AtomicUsize::new(1);

/// A scope claim with the semantics of a lock object: re-entrant per owner, two claim objects
/// exclude each other even in one process, a wait on a claim the same owner holds through another
/// object fails with [`Error::WouldDeadlock`], and a forked child never releases its parent's claims.
pub struct CoordClaim {
    coordinator: Coordinator,
    spec: ClaimSpec,
    object: usize,
    holds: ForkLocal<Vec<Hold>>,
}

struct Hold {
    owner: Owner,
    count: u32,
    grant: Box<dyn ClaimGrant>,
}

impl fmt::Debug for CoordClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordClaim")
            .field("spec", &self.spec)
            .field("held", &self.is_held())
            .finish_non_exhaustive()
    }
}

impl CoordClaim {
    pub(crate) fn new(coordinator: Coordinator, spec: ClaimSpec) -> Self {
        Self {
            coordinator,
            spec,
            object: NEXT_OBJECT.fetch_add(1, Ordering::Relaxed),
            // Claims inherited through fork belong to the parent: leaked in the child, never released.
            holds: ForkLocal::forgetting(Vec::new(), Vec::new),
        }
    }

    /// What is claimed.
    #[must_use]
    pub fn spec(&self) -> &ClaimSpec {
        &self.spec
    }

    /// Claims for `owner`, waiting as `wait`, `ctl` and `cancel` allow. Re-entry only counts.
    ///
    /// # Errors
    /// As [`ClaimBackend::claim`](super::ClaimBackend::claim), plus [`Error::WouldDeadlock`] when
    /// `owner` holds a conflicting claim through another object (it would wait for itself).
    pub fn acquire_as(
        &self,
        owner: Owner,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Acquired> {
        if let Some(h) = self.holds().iter_mut().find(|h| h.owner == owner) {
            h.count = h.count.checked_add(1).ok_or_else(|| Error::InvalidName {
                what: "re-entry count",
                name: self.spec.describe(),
                reason: "exceeds 2^32 nested acquisitions",
            })?;
            return Ok(Acquired::Reentered);
        }
        let url = self.coordinator.backend().url();
        let waits_on_itself = HELD.lock().iter().any(|e| {
            e.url == url
                && e.project == self.spec.project
                && e.owner == owner
                && e.object != self.object
                && sets_conflict(&e.paths, e.mode, &self.spec.paths, self.spec.mode)
        });
        if waits_on_itself && wait != Wait::Try {
            return Err(Error::WouldDeadlock {
                path: self.spec.describe().into(),
            });
        }
        let req = ClaimRequest {
            project: &self.spec.project,
            paths: &self.spec.paths,
            mode: self.spec.mode,
            purpose: self.spec.purpose.as_deref(),
            on_lost: self.spec.on_lost.clone(),
        };
        let grant = self.coordinator.backend().claims().claim(&req, wait, ctl, cancel)?;
        HELD.lock().push(HeldEntry {
            url,
            project: self.spec.project.clone(),
            paths: self.spec.paths.clone(),
            mode: self.spec.mode,
            owner,
            object: self.object,
        });
        self.holds().push(Hold { owner, count: 1, grant });
        Ok(Acquired::Fresh)
    }

    /// Releases one level of `owner`'s hold (all with `force`); `false` if `owner` holds nothing here.
    /// A lost claim is released without error.
    pub fn release_as(&self, owner: Owner, force: bool) -> Result<bool> {
        let hold = {
            let mut holds = self.holds();
            let Some(i) = holds.iter().position(|h| h.owner == owner) else {
                return Ok(false);
            };
            if !force && holds[i].count > 1 {
                holds[i].count -= 1;
                return Ok(true);
            }
            holds.swap_remove(i)
        };
        self.unregister(owner);
        hold.grant.release()?;
        Ok(true)
    }

    /// Checks with the backend that `owner` still holds the claim.
    ///
    /// # Errors
    /// [`Error::LockLost`] if not (or if `owner` does not hold it).
    pub fn ensure_held_as(&self, owner: Owner) -> Result<()> {
        match self.holds().iter().find(|h| h.owner == owner) {
            Some(h) => h.grant.ensure_held(),
            None => Err(Error::LockLost {
                name: self.spec.describe(),
                reason: "not held by this owner".into(),
            }),
        }
    }

    /// How many times `owner` claimed without releasing.
    #[must_use]
    pub fn count(&self, owner: Owner) -> u32 {
        self.holds().iter().find(|h| h.owner == owner).map_or(0, |h| h.count)
    }

    /// True if some owner in this process holds the claim through this object.
    #[must_use]
    pub fn is_held(&self) -> bool {
        !self.holds().is_empty()
    }

    /// Whether the backend already knows `owner`'s claim is lost (no round trip).
    #[must_use]
    pub fn is_lost(&self, owner: Owner) -> bool {
        self.holds()
            .iter()
            .find(|h| h.owner == owner)
            .is_some_and(|h| h.grant.is_lost())
    }

    fn unregister(&self, owner: Owner) {
        let mut held = HELD.lock();
        if let Some(i) = held.iter().position(|e| e.owner == owner && e.object == self.object) {
            held.swap_remove(i);
        }
    }

    fn holds(&self) -> MutexGuard<'_, Vec<Hold>> {
        self.holds.lock()
    }
}

impl Drop for CoordClaim {
    fn drop(&mut self) {
        let holds: Vec<Hold> = std::mem::take(&mut *self.holds());
        for hold in holds {
            self.unregister(hold.owner);
            if let Err(e) = hold.grant.release() {
                log::warn!(target: "ferrolock::coord", "release of claim {} failed: {e}", self.spec.describe());
            }
        }
    }
}
