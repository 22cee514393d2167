//! `atomic_write` from Rust: content, permissions, hard-link backups, symlinked targets. The failure of
//! each step is in `write_faults.rs`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::common::{TempDir, hidden};
use ferrolock::{WriteOptions, atomic_write};

#[test]
fn writes_keeps_mode_and_backs_up_by_hard_link() {
    let tmp = TempDir::new("basic");
    let dir = tmp.path().to_path_buf();
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
    assert!(hidden(&dir).is_empty(), "{:?}", hidden(&dir));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_symlinked_target_stays_a_symlink() {
    let tmp = TempDir::new("symlink");
    let dir = tmp.path().to_path_buf();
    let real = dir.join("real.md");
    fs::write(&real, b"old").unwrap();
    let link = dir.join("link.md");
    std::os::unix::fs::symlink("real.md", &link).unwrap();
    atomic_write(&link, b"new", &WriteOptions::default()).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&real).unwrap(), b"new");
    fs::remove_dir_all(&dir).unwrap();
}
