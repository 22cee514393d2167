//! [`Cancel`]: ends a coordinator wait from another thread, whatever the backend waits in.

use std::fmt;
use std::sync::{Mutex, PoisonError};

type Hook = Box<dyn Fn() + Send>;

/// Cancels coordinator waits from another thread (the asyncio layer uses one per waiting task).
///
/// Sticky, like [`crate::CancelToken`]: once cancelled, every wait that uses it ends with
/// [`Error::Cancelled`](crate::Error::Cancelled). A backend registers a hook for the time it waits
/// (the file backend cancels its kernel wait, the PostgreSQL backend wakes the waiting thread, which
/// cancels the query on the server).
#[derive(Default)]
pub struct Cancel {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    cancelled: bool,
    next: u64,
    hooks: Vec<(u64, Hook)>,
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    /// Not cancelled.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every present and future wait that uses this.
    pub fn cancel(&self) {
        let hooks = {
            let mut st = self.lock();
            st.cancelled = true;
            std::mem::take(&mut st.hooks)
        };
        for (_, hook) in hooks {
            hook();
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }

    /// Runs `hook` when cancelled, for as long as the returned guard lives. `None` (and the hook is
    /// not kept) if already cancelled.
    pub(crate) fn on_cancel(&self, hook: impl Fn() + Send + 'static) -> Option<HookGuard<'_>> {
        let mut st = self.lock();
        if st.cancelled {
            return None;
        }
        let id = st.next;
        st.next += 1;
        st.hooks.push((id, Box::new(hook)));
        Some(HookGuard { cancel: self, id })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Unregisters a hook when dropped.
pub(crate) struct HookGuard<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Drop for HookGuard<'_> {
    fn drop(&mut self) {
        self.cancel.lock().hooks.retain(|(id, _)| *id != self.id);
    }
}
