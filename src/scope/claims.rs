//! The claims this process holds, and how a claim is made and given back.
//!
//! A claim is a record file that its claimant holds with `flock(LOCK_EX)` from before the record is
//! visible until it is released: the record is written to a hidden temporary file, locked, and
//! renamed into place, so no reader ever sees a partial record and no moment exists where the
//! record is visible but unheld. The kernel drops the lock when the claimant dies, so a crashed
//! claim is free at once, whatever happens to its pid later; a claimant that dies before its rename
//! leaves a temporary file, which the next claimant in that directory removes.
//!
//! The table is per process (claims are the process's, as the legacy pid-based records were), so any
//! manager in the process can release a claim by name, and nobody else can.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::renameat;
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::record::ScopeRecord;
use crate::error::{Error, Result};
use crate::failpoints::{self, Failpoint, hit};
use crate::sys::fs::{create_new_at, entry_names, open_untrusted_at};
use crate::sys::{self, Dir, FinalLink, FlockOp, ForkLocal, Located, LockFile, locate};

/// Identifies a running directory independently of how its path was spelled (or the current
/// directory at the time): its device and inode.
pub(crate) type DirKey = (u64, u64);

#[derive(Debug)]
struct Held {
    dir: DirKey,
    name: String,
    path: PathBuf,
    /// Open read-write, locked exclusively for the claim's lifetime; closed at once in a forked child.
    file: LockFile,
    dev: u64,
    ino: u64,
}

struct Table {
    claims: Vec<Held>,
}

/// A forked child holds none of its parent's claims: it closes its copies without unlocking (an unlock
/// would release the parent's claims, which share these open file descriptions), and forgets them.
static TABLE: ForkLocal<Table> = ForkLocal::new(Table { claims: Vec::new() }, || Table { claims: Vec::new() });

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock()
}

pub(crate) fn dir_key(running_dir: &Path) -> io::Result<DirKey> {
    let meta = fs::metadata(running_dir)?;
    Ok((meta.dev(), meta.ino()))
}

/// True if this process holds the claim `name` in the directory `dir`.
pub(crate) fn holds(dir: DirKey, name: &str) -> bool {
    table().claims.iter().any(|c| c.dir == dir && c.name == name)
}

/// Publishes `record` at `path` as a claim held by this process. The caller holds the sentinel and
/// has checked that nothing live occupies `path`; whatever is there is replaced atomically. The path
/// is reached under the link rule, and everything happens relative to the directory checked.
pub(crate) fn create(dir: DirKey, name: &str, path: &Path, record: &ScopeRecord) -> Result<()> {
    let at = locate(path, FinalLink::Keep, true)?;
    sweep_temps(&at.dir);
    let (temp, mut file) = create_temp(&at)?;
    let published = (|| {
        // A brand-new file nobody else can have opened yet: the lock is granted at once.
        hit(Failpoint::ClaimRecordLock)
            .and_then(|()| sys::flock(file.as_fd(), FlockOp::Exclusive, true))
            .map_err(|e| Error::io("lock claim record", at.dir.join(&temp), e))?;
        write_record(&mut file, record.render().as_bytes())
            .map_err(|e| Error::io("write claim record", at.dir.join(&temp), e))?;
        hit(Failpoint::ClaimRecordRename)
            .and_then(|()| {
                Ok(renameat(
                    at.dir.fd(),
                    temp.as_os_str(),
                    at.dir.fd(),
                    at.name.as_os_str(),
                )?)
            })
            .map_err(|e| Error::io("publish claim record", path, e))
    })();
    if let Err(e) = published {
        let _ = unlinkat(at.dir.fd(), temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        return Err(e);
    }
    let meta = file.metadata().map_err(|e| Error::io("stat claim record", path, e))?;
    table().claims.push(Held {
        dir,
        name: name.to_owned(),
        path: path.to_path_buf(),
        file: LockFile::new(file),
        dev: meta.dev(),
        ino: meta.ino(),
    });
    Ok(())
}

/// Removes the temporary records of claimants that died while publishing (`.<name>.lock.tmp-*` in
/// `dir`): nothing reads them, so without this they would pile up. The caller holds the sentinel,
/// under which every claim is published, so no live claimant is writing one; a temporary file that is
/// locked all the same is left alone.
fn sweep_temps(dir: &Dir) {
    let Ok(names) = entry_names(dir.fd()) else { return };
    for name in names {
        let is_temp = name
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.contains(".lock.tmp-"));
        if !is_temp {
            continue;
        }
        // Opened without following a link and checked to be a regular file before anything else.
        let Ok(file) = open_untrusted_at(dir.fd(), &name) else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) || sys::flock(file.as_fd(), FlockOp::Exclusive, true).is_err() {
            continue;
        }
        let path = dir.join(&name);
        match unlinkat(dir.fd(), name.as_os_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => log::info!(target: "ferrolock::scope", "removed {} left by a crashed claimant", path.display()),
            Err(e) => log::warn!(target: "ferrolock::scope", "could not remove {}: {e}", path.display()),
        }
        let _ = sys::flock(file.as_fd(), FlockOp::Unlock, false);
    }
}

/// Writes the record in one `write`, or (only while a test has armed a fault point) in two with the
/// fault point `claim_record:write` between them, to simulate a crash halfway through.
fn write_record(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    if !failpoints::armed() {
        return file.write_all(bytes);
    }
    let (first, second) = bytes.split_at(bytes.len() / 2);
    file.write_all(first)?;
    hit(Failpoint::ClaimRecordWrite)?;
    file.write_all(second)
}

/// `.<file>.tmp-<pid>-<n>` beside the record: hidden, and not ending in `.lock`, so neither
/// ferrolock's scan nor the legacy `*.lock` glob ever reads a record that is still being written.
/// Created with the record's final mode (`0o666` minus the umask, as the legacy `open(path, "w")`).
fn create_temp(at: &Located) -> Result<(OsString, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut temp = OsString::from(".");
        temp.push(&at.name);
        temp.push(format!(".tmp-{}-{n}", std::process::id()));
        match create_new_at(at.dir.fd(), &temp, 0o666) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create claim record", at.dir.join(&temp), e)),
        }
    }
}

/// Gives back the claim `name` if this process holds it: removes the record (unless a legacy
/// process has since rewritten it in place, making it theirs) and unlocks. `false` if this process
/// holds no such claim; nothing is touched then.
pub(crate) fn release(dir: DirKey, name: &str) -> Result<bool> {
    let held = {
        let mut t = table();
        let Some(i) = t.claims.iter().position(|c| c.dir == dir && c.name == name) else {
            return Ok(false);
        };
        t.claims.swap_remove(i)
    };
    let outcome = remove_record(&held);
    // Unlock explicitly before closing: a child forked meanwhile shares the open file description.
    let _ = sys::flock(held.file.as_fd(), FlockOp::Unlock, false);
    outcome.map(|()| true)
}

/// Unlinks the record at `path` if it is still the file `dev`/`ino`, relative to its directory found
/// under the link rule (a record that vanished, or was replaced, is left to whoever replaced it).
pub(crate) fn unlink_if_same(path: &Path, dev: u64, ino: u64) -> io::Result<()> {
    let at = locate(path, FinalLink::Keep, false).map_err(|e| match e {
        Error::Io { source, .. } => source,
        other => io::Error::other(other.to_string()),
    })?;
    match at.dir.stat(&at.name)? {
        Some(st) if st.st_dev == dev && st.st_ino == ino => {
            Ok(unlinkat(at.dir.fd(), at.name.as_os_str(), UnlinkatFlags::NoRemoveDir)?)
        }
        _ => Ok(()),
    }
}

fn remove_record(held: &Held) -> Result<()> {
    let at = match locate(&held.path, FinalLink::Keep, false) {
        Ok(at) => at,
        // The directory is gone: there is nothing of ours left to remove.
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    match at.dir.stat(&at.name) {
        Ok(Some(st)) if st.st_dev == held.dev && st.st_ino == held.ino => {}
        // Removed (or replaced) by someone else: there is nothing of ours left to remove.
        Ok(_) => return Ok(()),
        Err(e) => return Err(Error::io("stat claim record", &held.path, e)),
    }
    let mut buf = vec![0u8; 64 * 1024];
    let n = held.file.read_at(&mut buf, 0).unwrap_or(0);
    if ScopeRecord::parse(&buf[..n]).is_ok_and(|r| !r.marked) {
        // A legacy process overwrote our record in place (it never checks names): it is its record
        // now, judged by its pid. Removing it would delete a live claim.
        log::warn!(
            target: "ferrolock::scope",
            "{} was rewritten by a legacy process; leaving it in place",
            held.path.display()
        );
        return Ok(());
    }
    let removed = hit(Failpoint::ClaimRecordRemove)
        .and_then(|()| Ok(unlinkat(at.dir.fd(), at.name.as_os_str(), UnlinkatFlags::NoRemoveDir)?));
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove claim record", &held.path, e)),
    }
}
