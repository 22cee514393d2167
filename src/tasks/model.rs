//! The outcomes of task-queue operations, the same for every backend, and the [`TaskFormat`] a local
//! queue stores its tasks in.

use std::path::Path;

use crate::error::Error;

/// What one claim of a task found.
#[derive(Debug)]
pub enum ClaimOutcome<O> {
    /// The claimant now holds the task.
    Claimed,
    /// Someone holds the task already: their claim, as the format records it.
    Taken(O),
    /// The queue has no such task.
    Missing,
    /// The task's lock is held elsewhere right now (another process is claiming, releasing or working
    /// on it under its lock). Only reported where the operation does not wait for that lock.
    Busy,
    /// The task could not be claimed for another reason (an id that cannot name a lock file, an I/O
    /// error on its lock file); the other tasks of the operation are unaffected.
    Failed(Error),
    /// There is no queue: its state file does not exist.
    NoQueue,
}

impl<O> ClaimOutcome<O> {
    /// Whether the claimant now holds the task.
    #[must_use]
    pub fn is_claimed(&self) -> bool {
        matches!(self, Self::Claimed)
    }
}

/// What a release of a task found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome<O> {
    /// The claim was removed: the task is free again.
    Released,
    /// Nobody held the task.
    NotClaimed,
    /// Someone else holds the task (their claim); nothing changed.
    ClaimedByOther(O),
    /// The queue has no such task.
    Missing,
    /// There is no queue: its state file does not exist.
    NoQueue,
    /// The releasing handle's own claim ended without a release (its claimant was taken for dead: the
    /// process or session that kept it alive ended, or its lease ran out), so the task may already be
    /// someone else's; nothing changed. Only coordinator queues, whose claims live as long as their
    /// claimant, report this.
    Lost,
}

/// One task of a queue, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<O> {
    /// The task's id.
    pub id: String,
    /// Its claim, if someone holds it.
    pub owner: Option<O>,
}

/// What a queue's document says about one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<O> {
    /// No such task.
    Missing,
    /// The task exists and nobody holds it.
    Free,
    /// The task is held: the claim as recorded.
    Claimed(O),
}

/// How a local queue's state file stores its tasks and their claims: the queue holds the locks and
/// writes the file; the format reads and changes the document in it.
///
/// [`NativeFormat`](super::NativeFormat) is ferrolock's own. The todo2 compat module supplies todo2's
/// `state.todo2.json` from Python (through the binding), so that file's shape stays in the adapter.
pub trait TaskFormat {
    /// The decoded state file.
    type Doc;
    /// Who claims (what a claim records about its claimant).
    type Claimant: ?Sized;
    /// A claim as the document records it.
    type Owner;
    /// The format's error; the queue's own errors convert into it.
    type Error: From<Error>;

    /// The document in the bytes of the state file at `path`.
    ///
    /// # Errors
    /// The bytes are not a document of this format (the file is left as it is).
    fn decode(&mut self, path: &Path, data: &[u8]) -> Result<Self::Doc, Self::Error>;

    /// The bytes of `doc`.
    ///
    /// # Errors
    /// `doc` cannot be written in this format.
    fn encode(&mut self, doc: &Self::Doc) -> Result<Vec<u8>, Self::Error>;

    /// What `doc` says about task `id`.
    ///
    /// # Errors
    /// The document cannot be read as this format's.
    fn lookup(&mut self, doc: &Self::Doc, id: &str) -> Result<Lookup<Self::Owner>, Self::Error>;

    /// The ids of the tasks nobody holds, in queue order; `None` if the document cannot tell (the queue
    /// then assumes any task may still be claimed).
    ///
    /// # Errors
    /// The document cannot be read as this format's.
    fn unclaimed(&mut self, doc: &Self::Doc) -> Result<Option<Vec<String>>, Self::Error>;

    /// Records `who`'s claim on task `id`, which [`lookup`](Self::lookup) found free.
    ///
    /// # Errors
    /// The claim cannot be recorded.
    fn claim(&mut self, doc: &mut Self::Doc, id: &str, who: &Self::Claimant) -> Result<(), Self::Error>;

    /// Removes `who`'s claim on task `id` (anyone's with `force`).
    ///
    /// # Errors
    /// The document cannot be read or changed as this format's.
    fn release(
        &mut self,
        doc: &mut Self::Doc,
        id: &str,
        who: &Self::Claimant,
        force: bool,
    ) -> Result<ReleaseOutcome<Self::Owner>, Self::Error>;

    /// Every task in queue order, with its claim if it has one.
    ///
    /// # Errors
    /// The document cannot be read as this format's.
    fn tasks(&mut self, doc: &Self::Doc) -> Result<Vec<Entry<Self::Owner>>, Self::Error>;
}
