//! Durable files: atomic replacement with a backup, and (built on it) state files updated by a locked
//! read-modify-write.

mod atomic;
mod state_file;

pub use atomic::{TempName, WriteOptions, atomic_write, sync_dir};
pub(crate) use atomic::{existing, sweep, write_at};
pub use state_file::{StateEdit, StateFile, StateFileOptions};
