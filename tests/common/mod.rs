//! Scaffolding shared by the Rust integration tests (each `tests/*.rs` file is its own crate and
//! includes this with `mod common;`).
#![allow(dead_code)] // each test crate uses a different part

use std::fs;
use std::path::{Path, PathBuf};

/// The steps of `atomic_write` before its rename, in order: a failure at any of them must leave the
/// target (and backup) as they were.
pub const ATOMIC_WRITE_STEPS: [&str; 7] = [
    "atomic_write:create_temp",
    "atomic_write:write",
    "atomic_write:chmod",
    "atomic_write:fsync_temp",
    "atomic_write:backup_link",
    "atomic_write:backup_rename",
    "atomic_write:rename",
];

/// A fresh directory under the system temp dir, removed on drop. `tag` keeps test binaries running in
/// parallel apart; the pid keeps concurrent runs apart.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ferrolock-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Hidden entries (temporary files, staging links): what a write must not leave behind.
    pub fn hidden(&self) -> Vec<String> {
        hidden(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The hidden entries of `dir`, sorted.
pub fn hidden(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    names
}
