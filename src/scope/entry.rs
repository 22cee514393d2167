//! [`ScopeEntry`]: a live claim as a scan found it.

use std::path::PathBuf;

use super::record::ScopeRecord;
use super::scan::Found;

/// A live claim: its record, and how its liveness is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeEntry {
    /// The record name (`instance_id or loop_name`; nested names keep their `/`).
    pub name: String,
    /// The record file.
    pub path: PathBuf,
    /// The record's content.
    pub record: ScopeRecord,
    /// True if the record file is held with a kernel lock (a ferrolock claim: alive exactly as long
    /// as its holder). False for a legacy record, judged alive by its pid.
    pub held: bool,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) bytes: Vec<u8>,
}

impl ScopeEntry {
    pub(crate) fn new(found: Found, record: ScopeRecord) -> Self {
        Self {
            name: found.name,
            path: found.path,
            record,
            held: found.held,
            dev: found.dev,
            ino: found.ino,
            bytes: found.bytes,
        }
    }

    /// Identity of the claim for "is this still the same one?" checks: file, content aside.
    pub(crate) fn key(&self) -> (u64, u64, i64) {
        (self.dev, self.ino, self.record.pid)
    }
}
