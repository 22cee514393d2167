//! Integration tests of the pure Rust core, without Python: one test binary, one module per concept.
//!
//! flock locks belong to open file descriptions, so two `FileLock`s (or two owners) in one process
//! contend exactly like two processes; most cross-process behaviour is therefore tested here with
//! threads. The one test that calls `fork()` lives in its own binary (`tests/fork.rs`), because a fork
//! while other test threads run could copy a held allocator or mutex into the child.

mod atomic_write;
mod bad_files;
mod common;
mod file_lock;
mod holder_records;
mod job;
mod props;
mod scope;
mod state_faults;
mod state_file;
mod state_md;
mod tasks;
mod write_faults;
