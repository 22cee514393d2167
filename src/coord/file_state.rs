//! State values on the `file://DIR` backend: `<name>.state` holds the value (the exact bytes, so
//! other tools can read it) and `<name>.state.bak` the version it replaced. Writers hold the state's
//! lock; each write is an [`atomic_write`] that keeps the backup by hard link, and a removal renames the
//! value onto the backup, so a removal is as recoverable as a write.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::backend::Fence;
use super::file::{Counter, named_file, read_optional};
use crate::durable::{WriteOptions, atomic_write, sync_dir};
use crate::error::{Error, Result};

fn paths(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    Ok((named_file(dir, name, "state")?, named_file(dir, name, "state.bak")?))
}

/// The value of state `name` (or its backup).
pub(super) fn read(dir: &Path, name: &str, backup: bool) -> Result<Option<Vec<u8>>> {
    let (value, bak) = paths(dir, name)?;
    read_optional(if backup { &bak } else { &value })
}

/// Replaces (or with `None` removes) state `name`; the caller holds the state's lock. With a fence,
/// the fence lock's counter stays `flock`ed from the check to the end of the write, so no newer token
/// can be drawn in between.
pub(super) fn write(dir: &Path, name: &str, value: Option<&[u8]>, fence: Option<&Fence>) -> Result<bool> {
    let counter = match fence {
        Some(f) => {
            let counter = Counter::open(&named_file(dir, &f.lock, "token")?)?;
            counter.lock(true)?;
            match counter.read() {
                Ok(current) if current == f.token => Some(counter),
                Ok(current) => {
                    counter.unlock();
                    return Err(Error::StaleToken {
                        name: f.lock.clone(),
                        token: f.token,
                        current,
                    });
                }
                Err(e) => {
                    counter.unlock();
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let result = replace(dir, name, value);
    if let Some(counter) = counter {
        counter.unlock();
    }
    result
}

fn replace(dir: &Path, name: &str, value: Option<&[u8]>) -> Result<bool> {
    let (path, bak) = paths(dir, name)?;
    let existed = match fs::symlink_metadata(&path) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io("stat state", &path, e)),
    };
    match value {
        Some(data) => {
            let options = WriteOptions {
                backup: Some(bak),
                ..WriteOptions::default()
            };
            atomic_write(&path, data, &options)?;
        }
        None if existed => {
            fs::rename(&path, &bak).map_err(|e| Error::io("move state to its backup", &path, e))?;
            sync_dir(dir).map_err(|e| Error::io("sync directory", dir, e))?;
        }
        None => {}
    }
    Ok(existed)
}
