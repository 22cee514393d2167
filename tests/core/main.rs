//! Integration tests of the pure Rust core, without Python: one test binary, one module per concept.
//!
//! flock locks belong to open file descriptions, so two `FileLock`s (or two owners) in one process
//! contend exactly like two processes; most cross-process behaviour is therefore tested here with
//! threads. The one test that calls `fork()` lives in its own binary (`tests/fork.rs`), because a fork
//! while other test threads run could copy a held allocator or mutex into the child.
//!
//! The fault-injection modules need the `failpoints` feature (`make test-rust` turns it on).

mod atomic_write;
mod bad_files;
mod common;
mod coord;
mod coord_tasks;
mod descriptors;
mod file_lock;
mod holder_records;
mod hostile_paths;
mod job;
mod owners;
mod props;
mod scope;
#[cfg(feature = "failpoints")]
mod state_faults;
mod state_file;
mod state_md;
mod tasks;
mod walk;
#[cfg(feature = "failpoints")]
mod write_faults;
