//! The `file://DIR` backend: the flock core rooted at a directory.
//!
//! Each name has up to six files in `DIR`, named by the name with every byte outside `[A-Za-z0-9_-]`
//! (and a leading `.`) written as `%XX`, so the mapping is exact and the directory stays flat:
//!
//! * `<name>.lock`: the lock file (the core protocol: flock, verify, holder record);
//! * `<name>.token`: the fencing counter, 20 decimal digits, rewritten in place (same length, one
//!   sector, `fdatasync`ed) while `flock`ed, so a crash never leaves it shorter or empty;
//! * `<name>.fenced`: the last fenced value (`<token>\n<bytes>`), replaced atomically;
//! * `<name>.done`: the run-once marker, replaced atomically;
//! * `<name>.state`, `<name>.state.bak`: a state value and the version it replaced (see
//!   [`super::file_state`]).
//!
//! Fenced writes and markers are checked against the counter while holding the counter file's flock,
//! so a write with a token older than the newest drawn one can never land.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use nix::libc;

use super::backend::{Backend, Fence, Grant, LockRequest, LockStatus, StatusHolder};
use super::cancel::Cancel;
use super::queue::QueueBackend;
use crate::durable::{WriteOptions, atomic_write};
use crate::error::{Error, Result};
use crate::lock::{CancelToken, FileLock, LockMode, LockOptions, LockState, Owner, Wait, WaitControl, probe};

/// Longest escaped name the backend accepts (a file name is at most 255 bytes, and a suffix follows).
const MAX_ESCAPED: usize = 248;

/// The `file://DIR` backend.
#[derive(Debug)]
pub struct FileBackend {
    pub(super) dir: PathBuf,
}

impl FileBackend {
    /// Locks under `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        Ok(Self { dir })
    }

    fn file(&self, name: &str, suffix: &str) -> Result<PathBuf> {
        named_file(&self.dir, name, suffix)
    }
}

/// The file of `name` with `suffix` in `dir`.
pub(super) fn named_file(dir: &Path, name: &str, suffix: &str) -> Result<PathBuf> {
    let escaped = escape(name);
    if escaped.len() > MAX_ESCAPED {
        return Err(Error::InvalidName {
            what: "lock name",
            name: name.to_owned(),
            reason: "is too long for the file backend once escaped",
        });
    }
    Ok(dir.join(format!("{escaped}.{suffix}")))
}

static NEXT_GRANT: AtomicU64 = AtomicU64::new(1);

impl Backend for FileBackend {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn claims(&self) -> &dyn super::claims::ClaimBackend {
        self
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn acquire(
        &self,
        req: &LockRequest<'_>,
        wait: Wait,
        ctl: &mut WaitControl<'_>,
        cancel: Option<&Cancel>,
    ) -> Result<Box<dyn Grant>> {
        let options = LockOptions {
            mode: req.mode,
            purpose: req.purpose.map(str::to_owned),
            // The coordinator detects waits on oneself across lock objects by name.
            detect_deadlock: false,
            ..LockOptions::default()
        };
        let lock = FileLock::new(self.file(req.name, "lock")?, &options)?;
        // Each grant is its own owner, so each has its own open file description.
        let owner = Owner::from_raw(NEXT_GRANT.fetch_add(1, Ordering::Relaxed) << 1);
        let token = Arc::new(CancelToken::new());
        let _hook = match cancel {
            Some(c) => {
                let t = Arc::clone(&token);
                Some(
                    c.on_cancel(move || t.cancel())
                        .ok_or_else(|| Error::Cancelled { path: req.name.into() })?,
                )
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
        lock.acquire_as(owner, wait, &mut inner)
            .map_err(|e| rename(e, req.name))?;
        Ok(Box::new(FileGrant {
            dir: self.dir.clone(),
            lock,
            owner,
            name: req.name.to_owned(),
            counter: self.file(req.name, "token")?,
            fenced: self.file(req.name, "fenced")?,
            done: self.file(req.name, "done")?,
            token: Mutex::new(None),
        }))
    }

    fn fenced_write(&self, name: &str, token: u64, value: &[u8]) -> Result<()> {
        let counter = self.file(name, "token")?;
        store_fenced(
            &counter,
            &self.file(name, "fenced")?,
            name,
            token,
            &fenced_record(token, value),
        )
    }

    fn fenced_read(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>> {
        let path = self.file(name, "fenced")?;
        let Some(data) = read_optional(&path)? else {
            return Ok(None);
        };
        let corrupt = || Error::Corrupt {
            path: path.clone(),
            reason: "no token line".into(),
        };
        let nl = data.iter().position(|&b| b == b'\n').ok_or_else(corrupt)?;
        let token = std::str::from_utf8(&data[..nl])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(corrupt)?;
        Ok(Some((token, data[nl + 1..].to_vec())))
    }

    fn done_marker(&self, name: &str) -> Result<Option<Vec<u8>>> {
        read_optional(&self.file(name, "done")?)
    }

    fn state_read(&self, name: &str, backup: bool) -> Result<Option<Vec<u8>>> {
        super::file_state::read(&self.dir, name, backup)
    }

    fn status(&self) -> Result<Vec<LockStatus>> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io("list directory", &self.dir, e))?;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(escaped) = file_name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            let Some(name) = unescape(escaped) else { continue };
            match probe(&entry.path()) {
                Ok(LockState::Held(holder)) => out.push(LockStatus {
                    name,
                    holders: vec![StatusHolder {
                        mode: LockMode::Exclusive,
                        holder,
                    }],
                    waiting: 0,
                }),
                Ok(_) => {}
                Err(e) => log::debug!(target: "ferrolock::coord", "status skips {}: {e}", entry.path().display()),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn task_queue(&self, name: &str) -> Result<Box<dyn QueueBackend>> {
        let escaped = self.file(name, "tasks")?;
        let escaped = escaped.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        Ok(Box::new(super::file_tasks::FileQueue::open(&self.dir, name, escaped)?))
    }
}

/// A contention error names the lock, not its file, as on every backend.
pub(super) fn rename(e: Error, name: &str) -> Error {
    match e {
        Error::WouldBlock { holder, held_by, .. } => Error::WouldBlock {
            path: name.into(),
            holder,
            held_by,
        },
        Error::Timeout {
            waited,
            holder,
            held_by,
            ..
        } => Error::Timeout {
            path: name.into(),
            waited,
            holder,
            held_by,
        },
        Error::Cancelled { .. } => Error::Cancelled { path: name.into() },
        Error::Interrupted { .. } => Error::Interrupted { path: name.into() },
        other => other,
    }
}

#[derive(Debug)]
struct FileGrant {
    dir: PathBuf,
    lock: FileLock,
    owner: Owner,
    name: String,
    counter: PathBuf,
    fenced: PathBuf,
    done: PathBuf,
    token: Mutex<Option<u64>>,
}

impl FileGrant {
    fn lost(&self, reason: &str) -> Error {
        Error::LockLost {
            name: self.name.clone(),
            reason: reason.into(),
        }
    }
}

impl Grant for FileGrant {
    fn token(&self) -> Result<u64> {
        let mut token = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = *token {
            return Ok(t);
        }
        self.ensure_held()?;
        let counter = Counter::open(&self.counter)?;
        counter.lock(true)?;
        let drawn = counter.read().and_then(|n| {
            let next = n + 1;
            counter.write(next)?;
            Ok(next)
        });
        counter.unlock();
        let drawn = drawn?;
        *token = Some(drawn);
        Ok(drawn)
    }

    fn ensure_held(&self) -> Result<()> {
        if self.lock.verify(self.owner)? {
            Ok(())
        } else {
            Err(self.lost("the lock file was removed or unlocked behind our back"))
        }
    }

    fn fenced_write(&self, value: &[u8], marker: bool) -> Result<()> {
        let token = self.token()?;
        self.ensure_held()?;
        if marker {
            store_fenced(&self.counter, &self.done, &self.name, token, value)
        } else {
            store_fenced(
                &self.counter,
                &self.fenced,
                &self.name,
                token,
                &fenced_record(token, value),
            )
        }
    }

    fn state_write(&self, state: &str, value: Option<&[u8]>, fence: Option<&Fence>) -> Result<bool> {
        self.ensure_held()?;
        super::file_state::write(&self.dir, state, value, fence)
    }

    fn is_lost(&self) -> bool {
        false
    }

    fn release(self: Box<Self>) -> Result<()> {
        self.lock.release_as(self.owner, true).map(|_| ())
    }
}

/// `<token>\n<value>`: the fenced value's file.
fn fenced_record(token: u64, value: &[u8]) -> Vec<u8> {
    let mut data = format!("{token}\n").into_bytes();
    data.extend_from_slice(value);
    data
}

/// Replaces `target` with `data` if `token` is the newest drawn for the name, checked and written with
/// the counter's flock held, so no draw can slip in between.
fn store_fenced(counter: &Path, target: &Path, name: &str, token: u64, data: &[u8]) -> Result<()> {
    let counter = Counter::open(counter)?;
    counter.lock(true)?;
    let result = counter.read().and_then(|current| {
        if current == token {
            atomic_write(target, data, &WriteOptions::default())
        } else {
            Err(Error::StaleToken {
                name: name.to_owned(),
                token,
                current,
            })
        }
    });
    counter.unlock();
    result
}

/// The fencing counter file of one name.
pub(super) struct Counter {
    file: File,
    path: PathBuf,
}

impl Counter {
    pub(super) fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => Error::Symlink { path: path.into() },
                _ => Error::io("open token counter", path, e),
            })?;
        let meta = file.metadata().map_err(|e| Error::io("stat token counter", path, e))?;
        if !meta.is_file() {
            return Err(Error::NotRegularFile {
                path: path.into(),
                kind: "special file",
            });
        }
        Ok(Self {
            file,
            path: path.into(),
        })
    }

    pub(super) fn lock(&self, exclusive: bool) -> Result<()> {
        let locked = if exclusive {
            self.file.lock()
        } else {
            self.file.lock_shared()
        };
        locked.map_err(|e| Error::io("lock token counter", &self.path, e))
    }

    pub(super) fn unlock(&self) {
        let _ = self.file.unlock();
    }

    pub(super) fn read(&self) -> Result<u64> {
        let mut text = String::new();
        (&self.file)
            .read_to_string(&mut text)
            .map_err(|e| Error::io("read token counter", &self.path, e))?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(0);
        }
        text.parse().map_err(|_| Error::Corrupt {
            path: self.path.clone(),
            reason: "the fencing counter is not a number".into(),
        })
    }

    fn write(&self, value: u64) -> Result<()> {
        // Fixed width: the new value covers the old one exactly, in one write.
        self.file
            .write_all_at(format!("{value:020}\n").as_bytes(), 0)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io("write token counter", &self.path, e))
    }
}

pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(mut f) => {
            let mut data = Vec::new();
            f.read_to_end(&mut data).map_err(|e| Error::io("read", path, e))?;
            Ok(Some(data))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(Error::Symlink { path: path.into() }),
        Err(e) => Err(Error::io("open", path, e)),
    }
}

pub(super) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn unescape(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (escape(&name) == escaped).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_is_exact_and_flat() {
        for name in ["a", "jobs/build-42", ".hidden", "a.b", "%2F", "日本", "a b"] {
            let e = escape(name);
            assert!(!e.contains('/') && !e.starts_with('.'), "{e}");
            assert_eq!(unescape(&e).as_deref(), Some(name));
        }
        assert_ne!(escape("a/b"), escape("a%2Fb"));
        assert_eq!(unescape("a%2f"), None, "only the canonical spelling maps back");
    }
}
