//! Reading the claim records of a running directory, and whether each is held.
//!
//! Each record costs one open, one `fstat`, one non-blocking shared `flock` probe, one read and one
//! close, and is parsed once: no subprocess, no path resolution, no Python per record.

use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::libc;

use super::record::ScopeRecord;
use crate::error::{Error, Result};
use crate::lock::held_exclusively;
use crate::sys::FileKind;
use crate::sys::fs::open_untrusted;

/// The sentinel every acquirer (legacy or ferrolock) locks around its check-and-write. It is a
/// dotfile ending in `.lock`, so it is skipped by name.
pub const SENTINEL_NAME: &str = ".acquire.lock";

/// Records larger than this are not claim records.
const MAX_RECORD_LEN: u64 = 1 << 20;

/// Nested record names (`group/loop`) deeper than this are not searched.
const MAX_DEPTH: usize = 16;

/// One record file as found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The record name: its path under the running directory without `.lock` (`group/loop`).
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// Someone holds the file with an exclusive flock: a live ferrolock claim.
    pub(crate) held: bool,
    pub(crate) bytes: Vec<u8>,
    pub(crate) record: Result<ScopeRecord, String>,
}

/// What a visitor wants after each record.
pub(crate) type Visit = ControlFlow<()>;

/// Calls `f` with every record under `running_dir` (recursively, for nested names), in directory
/// order with each directory's files before its subdirectories, until `f` breaks. A missing
/// directory has no records.
pub(crate) fn visit(running_dir: &Path, f: &mut dyn FnMut(Found) -> Result<Visit>) -> Result<()> {
    walk(running_dir, "", 0, f).map(|_| ())
}

fn walk(dir: &Path, prefix: &str, depth: usize, f: &mut dyn FnMut(Found) -> Result<Visit>) -> Result<Visit> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if depth == 0 && e.kind() == io::ErrorKind::NotFound => return Ok(ControlFlow::Continue(())),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    let mut subdirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            log::debug!(target: "ferrolock::scope", "skipping non-UTF-8 name in {}", dir.display());
            continue;
        };
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            subdirs.push(name.to_owned());
            continue;
        }
        let Some(stem) = name.strip_suffix(".lock") else {
            continue;
        };
        if depth == 0 && name == SENTINEL_NAME {
            continue;
        }
        let record_name = format!("{prefix}{stem}");
        match read_record(&entry.path(), &record_name) {
            Ok(Some(found)) => {
                if f(found)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(None) => {}
            Err(e @ (Error::Symlink { .. } | Error::NotRegularFile { .. })) => {
                log::warn!(target: "ferrolock::scope", "ignoring {e}");
            }
            Err(e) => return Err(e),
        }
    }
    if depth < MAX_DEPTH {
        for sub in subdirs {
            let path = dir.join(&sub);
            match walk(&path, &format!("{prefix}{sub}/"), depth + 1, f) {
                Ok(ControlFlow::Break(())) => return Ok(ControlFlow::Break(())),
                Ok(ControlFlow::Continue(())) => {}
                // A subdirectory that vanished or that we may not read holds nothing we can see.
                Err(Error::Io { source, .. })
                    if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Reads one record: `None` if it vanished. Never follows a symlink.
pub(crate) fn read_record(path: &Path, name: &str) -> Result<Option<Found>> {
    let file = match open_record(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Error::Symlink { path: path.into() }),
        Err(e) => return Err(Error::io("open claim record", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat claim record", path, e))?;
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: path.into(),
            kind: FileKind::of_mode(meta.mode()).word(),
        });
    }
    let held = held_exclusively(&file).map_err(|e| Error::io("probe claim record", path, e))?;
    let mut bytes = Vec::with_capacity(256);
    (&file)
        .take(MAX_RECORD_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read claim record", path, e))?;
    let record = if bytes.len() as u64 > MAX_RECORD_LEN {
        Err("larger than 1 MiB".to_owned())
    } else {
        ScopeRecord::parse(&bytes)
    };
    Ok(Some(Found {
        name: name.to_owned(),
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        held,
        bytes,
        record,
    }))
}

/// Opens a record read-only without following a final symlink or blocking on a FIFO.
pub(crate) fn open_record(path: &Path) -> io::Result<File> {
    open_untrusted(path)
}
