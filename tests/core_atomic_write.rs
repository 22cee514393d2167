//! `atomic_write` from Rust: content, permissions, hard-link backups, symlinked targets. The failure of
//! each step is in `core_write_faults.rs` (fault points are process-global).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferrolock::{WriteOptions, atomic_write};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrolock-atomic-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn litter(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.retain(|n| n.starts_with('.'));
    names
}

#[test]
fn writes_keeps_mode_and_backs_up_by_hard_link() {
    let dir = temp_dir("basic");
    let target = dir.join("state.json");
    let backup = dir.join("state.json.bak");
    let opts = WriteOptions {
        backup: Some(backup.clone()),
        ..WriteOptions::default()
    };

    atomic_write(&target, b"one", &opts).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"one");
    assert!(!backup.exists(), "no backup of a file that did not exist");

    fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
    let old_inode = fs::metadata(&target).unwrap().ino();
    atomic_write(&target, b"two", &opts).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"two");
    assert_eq!(fs::read(&backup).unwrap(), b"one");
    assert_eq!(
        fs::metadata(&backup).unwrap().ino(),
        old_inode,
        "backup is the old inode, not a copy"
    );
    assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
    assert!(litter(&dir).is_empty(), "{:?}", litter(&dir));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_symlinked_target_stays_a_symlink() {
    let dir = temp_dir("symlink");
    let real = dir.join("real.md");
    fs::write(&real, b"old").unwrap();
    let link = dir.join("link.md");
    std::os::unix::fs::symlink("real.md", &link).unwrap();
    atomic_write(&link, b"new", &WriteOptions::default()).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&real).unwrap(), b"new");
    fs::remove_dir_all(&dir).unwrap();
}
