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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::libc;

use super::record::ScopeRecord;
use super::scan;
use crate::error::{Error, Result};
use crate::failpoints::{self, Failpoint, hit};
use crate::sys::{self, FlockOp, fork_generation};

/// Identifies a running directory independently of how its path was spelled (or the current
/// directory at the time): its device and inode.
pub(crate) type DirKey = (u64, u64);

#[derive(Debug)]
struct Held {
    dir: DirKey,
    name: String,
    path: PathBuf,
    /// Open read-write, locked exclusively for the claim's lifetime.
    file: File,
    dev: u64,
    ino: u64,
}

struct Table {
    /// The fork generation the claims were made in: a forked child holds none of them.
    generation: u64,
    claims: Vec<Held>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    generation: 0,
    claims: Vec::new(),
});

fn table() -> MutexGuard<'static, Table> {
    let generation = fork_generation();
    let mut t = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if t.generation != generation {
        // Inherited through fork: close without unlocking (an unlock would release the parent's
        // claims, which share these open file descriptions), and forget.
        t.claims.clear();
        t.generation = generation;
    }
    t
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
/// has checked that nothing live occupies `path`; whatever is there is replaced atomically.
pub(crate) fn create(dir: DirKey, name: &str, path: &Path, record: &ScopeRecord) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    sweep_temps(parent);
    let (temp_path, mut file) = create_temp(path)?;
    let published = (|| {
        // A brand-new file nobody else can have opened yet: the lock is granted at once.
        hit(Failpoint::ClaimRecordLock)
            .and_then(|()| sys::flock(file.as_fd(), FlockOp::Exclusive, true))
            .map_err(|e| Error::io("lock claim record", &temp_path, e))?;
        write_record(&mut file, record.render().as_bytes())
            .map_err(|e| Error::io("write claim record", &temp_path, e))?;
        hit(Failpoint::ClaimRecordRename)
            .and_then(|()| fs::rename(&temp_path, path))
            .map_err(|e| Error::io("publish claim record", path, e))
    })();
    if let Err(e) = published {
        let _ = fs::remove_file(&temp_path);
        return Err(e);
    }
    let meta = file.metadata().map_err(|e| Error::io("stat claim record", path, e))?;
    table().claims.push(Held {
        dir,
        name: name.to_owned(),
        path: path.to_path_buf(),
        file,
        dev: meta.dev(),
        ino: meta.ino(),
    });
    Ok(())
}

/// Removes the temporary records of claimants that died while publishing (`.<name>.lock.tmp-*` in
/// `dir`): nothing reads them, so without this they would pile up. The caller holds the sentinel,
/// under which every claim is published, so no live claimant is writing one; a temporary file that is
/// locked all the same is left alone.
fn sweep_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let is_temp = file_name
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.contains(".lock.tmp-"));
        if !is_temp || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = scan::open_record(&path) else { continue };
        if sys::flock(file.as_fd(), FlockOp::Exclusive, true).is_err() {
            continue;
        }
        match fs::remove_file(&path) {
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

/// `.<file>.tmp-<pid>-<n>` beside `path`: hidden, and not ending in `.lock`, so neither ferrolock's
/// scan nor the legacy `*.lock` glob ever reads a record that is still being written.
fn create_temp(path: &Path) -> Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = path.with_file_name(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o666) // as the legacy `open(path, "w")`: the umask decides
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create claim record", temp, e)),
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

fn remove_record(held: &Held) -> Result<()> {
    match fs::symlink_metadata(&held.path) {
        Ok(meta) if meta.dev() == held.dev && meta.ino() == held.ino => {}
        // Removed (or replaced) by someone else: there is nothing of ours left to remove.
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
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
    match hit(Failpoint::ClaimRecordRemove).and_then(|()| fs::remove_file(&held.path)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove claim record", &held.path, e)),
    }
}
