//! Durable files: atomic replacement with a backup, and (built on it) state files updated by a locked
//! read-modify-write.

mod atomic;
pub mod faults;

pub use atomic::{TempName, WriteOptions, atomic_write, sync_dir};
