//! Holder records: one line of JSON at offset 0 of a lock file, written by an exclusive holder after it
//! wins the lock, naming who holds it.
//!
//! ```text
//! {"pid":4121,"host":"build-3","since":"2026-11-22T04:30:00.123456Z","purpose":"rebase job 17","version":1}
//! ```
//!
//! A record means something only while the file is locked, and only if the holder wrote it: the kernel,
//! not the record, says who holds the file. Readers therefore probe the lock first (a non-blocking
//! shared lock on their own descriptor), read the record only when that probe fails, and present it
//! only if `/proc/locks` names the record's pid as the exclusive flock holder of that very file (and
//! the record is from this host). Anyone who can write the file can write any text into it (a shared
//! lock file is often writable by all; a leftover of a crashed holder is still there); such a record is
//! never shown as the holder, and the kernel's pid is named instead. The record is never truncated: a
//! newer, shorter record may leave the tail of an older one after its newline, and readers take the
//! first line.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use nix::libc;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::failpoints::{self, Failpoint};
use crate::sys::{self, FlockOp};

/// The record format version written by this library.
pub const HOLDER_RECORD_VERSION: u64 = 1;

/// Records longer than this are not read (a lock file is not a data file).
const MAX_RECORD_LEN: usize = 4096;

/// Who holds a lock, as its holder recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id of the holder.
    pub pid: u32,
    /// Host name of the holder's machine.
    pub host: String,
    /// When the holder won the lock (RFC 3339, UTC).
    pub since: String,
    /// What the holder said it holds the lock for, if anything.
    pub purpose: Option<String>,
    /// Record format version.
    pub version: u64,
}

impl Holder {
    /// Parses the first line of `bytes`. Returns `None` for anything that is not a record
    /// (empty file, garbage, a legacy tool's content): a record is advice, never required.
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let line = bytes.split(|&b| b == b'\n').next()?;
        let value: Value = serde_json::from_slice(line).ok()?;
        let obj = value.as_object()?;
        Some(Self {
            pid: u32::try_from(obj.get("pid")?.as_u64()?).ok()?,
            host: obj.get("host")?.as_str()?.to_owned(),
            since: obj.get("since")?.as_str()?.to_owned(),
            purpose: obj.get("purpose").and_then(Value::as_str).map(str::to_owned),
            version: obj.get("version").and_then(Value::as_u64).unwrap_or(0),
        })
    }

    /// Whether the recorded process may still be alive: always for another host's records (it cannot
    /// be checked from here), and for this host's unless the process is gone. A record of a dead
    /// process is a leftover: its writer crashed before (or while) replacing it, and whoever holds the
    /// lock now wrote none (a legacy `fcntl.flock` tool, a read-only descriptor, a holder between
    /// winning and writing). Readers ignore such records rather than name a dead holder.
    #[must_use]
    pub fn may_be_alive(&self) -> bool {
        self.host != hostname() || sys::process_exists(i64::from(self.pid))
    }

    /// Whether this record was written by the process that holds the lock: the record is from this
    /// host and its pid is one of `pids`, the exclusive flock holders of the file as `/proc/locks`
    /// lists them. Nothing else can tell a genuine record from one written by anybody else who may
    /// write the file.
    #[must_use]
    pub fn written_by_holder(&self, pids: &[i32]) -> bool {
        self.host == hostname() && pids.iter().any(|&p| i64::from(p) == i64::from(self.pid))
    }

    /// A one-line human description: `pid 4121 on build-3 since 2026-... (rebase job 17)`.
    #[must_use]
    pub fn describe(&self) -> String {
        let mut s = format!("pid {} on {} since {}", self.pid, self.host, self.since);
        if let Some(p) = &self.purpose {
            s.push_str(" (");
            s.push_str(p);
            s.push(')');
        }
        s
    }
}

/// The parts of a holder record that do not change between acquisitions, JSON-escaped once.
#[derive(Debug, Clone)]
pub(crate) struct RecordTemplate {
    host_json: String,
    purpose_json: String,
}

impl RecordTemplate {
    pub(crate) fn new(purpose: Option<&str>) -> Self {
        Self {
            host_json: Value::from(hostname()).to_string(),
            purpose_json: purpose.map_or_else(|| "null".to_owned(), |p| Value::from(p).to_string()),
        }
    }

    /// The record for `pid`, stamped now, newline-terminated.
    pub(crate) fn render(&self, pid: u32) -> String {
        let since = humantime::format_rfc3339_micros(SystemTime::now());
        format!(
            "{{\"pid\":{pid},\"host\":{},\"since\":\"{since}\",\"purpose\":{},\"version\":{HOLDER_RECORD_VERSION}}}\n",
            self.host_json, self.purpose_json
        )
    }
}

/// This machine's host name, looked up once.
pub(crate) fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        nix::unistd::gethostname().map_or_else(|_| "unknown".to_owned(), |h| h.to_string_lossy().into_owned())
    })
}

/// Writes `record` at offset 0 of a locked file. Never truncates (see the module docs), except to
/// clear the file when the write fails: otherwise the previous holder's record (or half of ours over
/// it) would stay behind and be reported as the live holder of a lock it no longer holds.
///
/// Fault points (tests only): `holder_record:write` between winning the lock and writing, and
/// `holder_record:torn` after the first half of the record. The split write happens only while a
/// fault point is armed, so the lock path keeps its single `pwrite`.
pub(crate) fn write_record(file: &File, record: &str) -> io::Result<()> {
    let written = failpoints::hit(Failpoint::HolderRecordWrite).and_then(|()| {
        let bytes = record.as_bytes();
        if !failpoints::armed() {
            return file.write_all_at(bytes, 0);
        }
        let (first, second) = bytes.split_at(bytes.len() / 2);
        file.write_all_at(first, 0)?;
        failpoints::hit(Failpoint::HolderRecordTorn)?;
        file.write_all_at(second, first.len() as u64)
    });
    if written.is_err() {
        // We hold the lock exclusively, so truncating is safe; freeing blocks works on a full disk.
        let _ = file.set_len(0);
    }
    written
}

/// How every record this library writes begins.
const RECORD_PREFIX: &[u8] = b"{\"pid\":";

/// Whether the lock file open as `file` (`size` bytes long) holds nothing but what holders write:
/// nothing at all, or a holder record (possibly torn by a crash, possibly followed by the tail of a
/// longer older one), recognised by the way every record begins. Anything else is somebody's data,
/// which a holder record must never overwrite.
pub(crate) fn holds_only_a_record(file: &File, size: u64) -> bool {
    if size == 0 {
        return true;
    }
    if size > MAX_RECORD_LEN as u64 {
        return false;
    }
    let mut start = [0u8; RECORD_PREFIX.len()];
    let n = file.read_at(&mut start, 0).unwrap_or(0);
    let start = &start[..n];
    // A record torn after fewer bytes than the prefix is a prefix of it.
    !start.is_empty() && RECORD_PREFIX.starts_with(start)
}

/// Whether a lock file is held, and by whom, found without disturbing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// The file does not exist.
    Missing,
    /// Nobody holds the file (or only shared holders, which write no record).
    Free,
    /// Someone holds the file exclusively; their record, if the kernel confirms that the holding
    /// process wrote it (see [`Holder::written_by_holder`]).
    Held(Option<Holder>),
}

/// An exclusive holder as far as it can be known: the pid the kernel names, and the record when that
/// process wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Observed {
    pub(crate) record: Option<Holder>,
    pub(crate) pid: Option<u32>,
}

/// Probes `path` with a non-blocking shared lock on a fresh read-only descriptor, and reads the holder
/// record if the probe shows an exclusive holder. Symlinks are not followed.
pub fn probe(path: &Path) -> Result<LockState> {
    let file = match sys::fs::open_untrusted(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LockState::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Error::Symlink { path: path.into() }),
        Err(e) => return Err(Error::io("open lock file", path, e)),
    };
    if !held_exclusively(&file).map_err(|e| Error::io("probe lock", path, e))? {
        return Ok(LockState::Free); // or held shared only
    }
    Ok(LockState::Held(observe_held(&file).record))
}

/// Who holds `path` exclusively right now, if anyone does (for messages: never an error).
pub(crate) fn observe(path: &Path) -> Option<Observed> {
    let file = sys::fs::open_untrusted(path).ok()?;
    held_exclusively(&file).ok()?.then(|| observe_held(&file))
}

/// The kernel's holder of the file open as `file` (held exclusively) and its record, if it wrote one.
fn observe_held(file: &File) -> Observed {
    let mut buf = Vec::with_capacity(256);
    // A read error only costs us the record, not the answer.
    let _ = file.take(MAX_RECORD_LEN as u64).read_to_end(&mut buf);
    let Ok(meta) = file.metadata() else {
        return Observed::default();
    };
    let pids = sys::flock_info(meta.dev(), meta.ino())
        .map(|info| info.exclusive)
        .unwrap_or_default();
    Observed {
        record: Holder::parse(&buf).filter(|h| h.written_by_holder(&pids)),
        pid: pids.first().and_then(|&p| u32::try_from(p).ok()).filter(|&p| p > 0),
    }
}

/// Whether someone holds the file open as `file` exclusively: a non-blocking shared lock on our own
/// descriptor fails exactly then. A probe that succeeds is undone at once (before the descriptor is
/// closed, so a child forked meanwhile by another thread cannot keep it alive).
pub(crate) fn held_exclusively(file: &File) -> io::Result<bool> {
    match sys::flock(file.as_fd(), FlockOp::Shared, true) {
        Ok(()) => {
            let _ = sys::flock(file.as_fd(), FlockOp::Unlock, false);
            Ok(false)
        }
        Err(e) if is_would_block(&e) => Ok(true),
        Err(e) => Err(e),
    }
}

/// The live holder of `path`, if it is held exclusively and left a record.
#[must_use]
pub fn read_holder(path: &Path) -> Option<Holder> {
    match probe(path) {
        Ok(LockState::Held(h)) => h,
        _ => None,
    }
}

pub(crate) fn is_would_block(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EWOULDBLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_render_and_parse() {
        let t = RecordTemplate::new(Some("rebase \"job\" 17"));
        let line = t.render(4121);
        let h = Holder::parse(line.as_bytes()).expect("parses");
        assert_eq!(h.pid, 4121);
        assert_eq!(h.purpose.as_deref(), Some("rebase \"job\" 17"));
        assert_eq!(h.version, HOLDER_RECORD_VERSION);
        assert!(h.since.ends_with('Z'));
    }

    #[test]
    fn takes_the_first_line_only() {
        let mut bytes = RecordTemplate::new(None).render(7).into_bytes();
        bytes.extend_from_slice(b"ld tail of an older, longer record\"}\n");
        assert_eq!(Holder::parse(&bytes).map(|h| h.pid), Some(7));
    }

    #[test]
    fn garbage_is_not_a_record() {
        for junk in [
            &b""[..],
            b"\n",
            b"{",
            b"[1,2]",
            b"{\"pid\":-1,\"host\":\"h\",\"since\":\"s\"}",
            b"\xff\xfe",
        ] {
            assert_eq!(Holder::parse(junk), None, "{junk:?}");
        }
    }
}
