//! Run a setup once across processes: a marker file plus a lock.
//!
//! The first caller runs the setup while holding the lock and then writes the marker (atomically, so
//! nobody ever sees a half-written one); callers that arrive meanwhile wait in the kernel, however long
//! the setup takes (up to an optional deadline), then find the marker and return without running it.
//! If the setup fails, its error goes to the caller that ran it, no marker is left, and the next caller
//! tries again. A crashed setup releases the lock (the kernel does) and leaves no marker; a caller that
//! died while writing the marker leaves at most a temporary file, which the next setup run removes.
//!
//! **Which inode is the mutex.** logist locked `workspace/.workspace_setup.lock`, inside the folder its
//! setup deletes and recreates (`rmtree` + `git worktree add`). The moment the folder goes, a newcomer
//! creates a fresh lock file, locks it without contention and runs a second setup beside the first.
//! Verifying the inode after locking (the core protocol) cannot help: the newcomer's inode is valid.
//! So the mutex ([`RunOnce::lock`]) must live outside anything the setup removes, and a legacy lock
//! path inside it can be held as well ([`RunOnce::also_lock`]) to exclude processes that still run the
//! old code.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::durable::{WriteOptions, existing, sweep, write_at};
use crate::error::{Error, Result};
use crate::lock::{FileLock, LockOptions, Owner, Wait, WaitControl, remove_if_unheld};
use crate::sys::{Dir, FileKind, FinalLink, locate};

/// What [`run_once`] coordinates.
#[derive(Debug, Clone)]
pub struct RunOnce {
    /// The marker: once it exists, the setup is done. Written atomically after the setup succeeds.
    pub marker: PathBuf,
    /// The lock file every caller takes before it checks the marker and runs the setup. It must not be
    /// inside anything the setup deletes or replaces (see the module docs).
    pub lock: PathBuf,
    /// Further lock files held while the setup runs, taken after [`lock`](Self::lock) and only when the
    /// marker is missing (a legacy tool's lock path, so its processes are excluded too).
    pub also_lock: Vec<PathBuf>,
    /// How long to wait for the locks, in total.
    pub wait: Wait,
    /// Once the marker exists, remove the lock files that nobody holds (safe under the core protocol:
    /// removal happens only while holding the file, and acquirers re-verify the inode).
    pub cleanup: bool,
}

impl RunOnce {
    /// Waits forever, takes no extra locks, cleans up its lock files.
    pub fn new(marker: impl Into<PathBuf>, lock: impl Into<PathBuf>) -> Self {
        Self {
            marker: marker.into(),
            lock: lock.into(),
            also_lock: Vec::new(),
            wait: Wait::Forever,
            cleanup: true,
        }
    }
}

/// How [`run_once`] ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOnceOutcome {
    /// The marker already existed; nothing was locked.
    AlreadyDone,
    /// Another caller finished the setup while this one waited for the lock.
    DoneByOther,
    /// This caller ran the setup and wrote the marker.
    Ran,
}

/// Why [`run_once`] failed.
#[derive(Debug)]
pub enum RunOnceError<E> {
    /// Waiting for a lock, or writing the marker, failed (a timeout, an interrupt, an I/O error).
    Coordination(Error),
    /// The setup itself failed; no marker was left.
    Setup(E),
}

impl<E> From<Error> for RunOnceError<E> {
    fn from(e: Error) -> Self {
        Self::Coordination(e)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for RunOnceError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Coordination(e) => e.fmt(f),
            Self::Setup(e) => write!(f, "setup failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RunOnceError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Coordination(e) => Some(e),
            Self::Setup(e) => Some(e),
        }
    }
}

/// Runs `setup` unless `spec.marker` exists, so that across all processes it runs once at a time and
/// never again after it succeeded. `setup` returns the marker's contents.
///
/// The marker is first checked without locking (it is written only after the setup, so seeing it means
/// the setup is done). Otherwise the caller takes [`RunOnce::lock`] (waiting in the kernel, up to
/// `spec.wait`), checks again, takes [`RunOnce::also_lock`], runs `setup`, writes the marker with
/// [`atomic_write`](crate::atomic_write), and releases.
///
/// # Errors
/// [`RunOnceError::Setup`] with `setup`'s error (a marker the setup may have left is removed);
/// [`RunOnceError::Coordination`] for lock waits that time out or are interrupted, a marker path that
/// holds anything but a regular file (a FIFO, a directory, a dangling symlink: the setup would be
/// skipped, or its marker could never be written), a marker another user controls in a shared
/// directory (see [`crate::atomic_write`]), and I/O errors.
pub fn run_once<E>(
    spec: &RunOnce,
    ctl: &mut WaitControl<'_>,
    setup: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<RunOnceOutcome, RunOnceError<E>> {
    if marker_exists(&spec.marker)? {
        return Ok(RunOnceOutcome::AlreadyDone);
    }
    let purpose = format!("run once: {}", spec.marker.display());
    let mutex = lock_file(&spec.lock, &purpose)?;
    let me = Owner::current_thread();
    mutex.acquire_as(me, spec.wait, ctl)?;
    let outcome = match marker_exists(&spec.marker) {
        Ok(true) => Ok(RunOnceOutcome::DoneByOther),
        Ok(false) => run_locked(spec, ctl, &purpose, setup),
        Err(e) => Err(e.into()),
    };
    mutex.release_as(me, true)?;
    if outcome.is_ok() && spec.cleanup {
        for path in spec.also_lock.iter().chain([&spec.lock]) {
            if let Err(e) = remove_if_unheld(path) {
                log::debug!(target: "ferrolock::job", "left {} in place: {e}", path.display());
            }
        }
    }
    outcome
}

/// The part that runs under the mutex once the marker is known to be missing.
fn run_locked<E>(
    spec: &RunOnce,
    ctl: &mut WaitControl<'_>,
    purpose: &str,
    setup: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<RunOnceOutcome, RunOnceError<E>> {
    let me = Owner::current_thread();
    let mut extra = Vec::with_capacity(spec.also_lock.len());
    for path in &spec.also_lock {
        let lock = lock_file(path, purpose)?;
        lock.acquire_as(me, spec.wait, ctl)?;
        extra.push(lock);
    }
    // The marker's folder exists when the setup starts (logist created it first, too). It is not
    // recreated afterwards: a setup that removed it and did not put it back has failed.
    if let Some(dir) = spec.marker.parent().filter(|d| !d.as_os_str().is_empty()) {
        Dir::open(dir, true)?;
    }
    // A caller that died while writing the marker left its temporary file; only marker writers hold
    // this lock, so any such file now is a leftover.
    sweep(&locate(&spec.marker, FinalLink::Keep, false)?, "tmp");
    log::debug!(target: "ferrolock::job", "running setup for {}", spec.marker.display());
    let result = match setup() {
        Ok(text) => write_marker(&spec.marker, &text).map_err(RunOnceError::Coordination),
        Err(e) => {
            remove_marker(&spec.marker);
            Err(RunOnceError::Setup(e))
        }
    };
    for lock in extra.iter().rev() {
        lock.release_as(me, true)?;
    }
    result.map(|()| RunOnceOutcome::Ran)
}

/// The marker contents [`run_once`] callers use when they have nothing to say:
/// `completed 2026-11-22T04:30:00.123456Z by pid 4121\n`.
#[must_use]
pub fn default_marker_text() -> Vec<u8> {
    let when = humantime::format_rfc3339_micros(std::time::SystemTime::now());
    format!("completed {when} by pid {}\n", std::process::id()).into_bytes()
}

fn lock_file(path: &Path, purpose: &str) -> Result<FileLock> {
    let options = LockOptions {
        purpose: Some(purpose.to_owned()),
        file_mode: 0o666,
        ..LockOptions::default()
    };
    FileLock::new(path, &options)
}

/// Whether the marker is there: a regular file, or a symlink the link rule follows to one
/// (`os.path.exists` semantics, without trusting another user's links or files in a shared directory).
/// Anything else at the marker's path is an error: a FIFO or a directory is not a marker (counting it
/// as one would skip the setup), and a dangling symlink could never be replaced by one.
fn marker_exists(marker: &Path) -> Result<bool> {
    let at = match locate(marker, FinalLink::Keep, false) {
        Ok(at) => at,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let st = at.dir.stat(&at.name).map_err(|e| Error::io("stat", at.path(), e))?;
    let Some(st) = st else { return Ok(false) };
    let at = if FileKind::of_mode(st.st_mode) == FileKind::Symlink {
        let target = locate(marker, FinalLink::Follow, false)?;
        if target
            .dir
            .stat(&target.name)
            .map_err(|e| Error::io("stat", target.path(), e))?
            .is_none()
        {
            return Err(Error::Symlink { path: marker.into() });
        }
        target
    } else {
        at
    };
    Ok(existing(&at)?.is_some())
}

fn write_marker(marker: &Path, text: &[u8]) -> Result<()> {
    // The marker was missing under the lock (not even a dangling symlink, which `marker_exists`
    // refuses), so the name is written as it is, never through a link.
    let at = locate(marker, FinalLink::Keep, false)?;
    write_at(&at, text, &WriteOptions::default())
}

fn remove_marker(marker: &Path) {
    let removed = locate(marker, FinalLink::Keep, false).and_then(|at| {
        unlinkat(at.dir.fd(), at.name.as_os_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| Error::io("remove", marker, e.into()))
    });
    match removed {
        Ok(()) => log::debug!(target: "ferrolock::job", "removed {} left by a failed setup", marker.display()),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(Errno::ENOENT as i32) => {}
        Err(e) => log::warn!(target: "ferrolock::job", "could not remove {}: {e}", marker.display()),
    }
}
