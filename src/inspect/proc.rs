//! What `/proc` says about locks and open files, read once per scan.
//!
//! `/proc/locks` lists every flock lock with its mode and the pid that took it, and every blocked
//! request (`->`), without touching the files. `/proc/<pid>/fd` says which files any process has
//! open: a lock file that someone merely has open may be about to be locked by a process that does
//! not re-check the inode afterwards (every legacy module), so `clean` leaves such files alone.

use std::collections::{HashMap, HashSet};
use std::fs;

use nix::sys::stat::{major, minor};

/// A file's identity as `/proc/locks` prints it: device major, device minor, inode.
pub(crate) type FileKey = (u64, u64, u64);

pub(crate) fn key_of(dev: u64, ino: u64) -> FileKey {
    (major(dev), minor(dev), ino)
}

/// The flock locks on one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlockInfo {
    pub(crate) exclusive: Vec<i32>,
    pub(crate) shared: Vec<i32>,
    pub(crate) waiters: u32,
}

/// Parses `/proc/locks`; `None` if it cannot be read (then callers probe each file instead).
pub(crate) fn flock_table() -> Option<HashMap<FileKey, FlockInfo>> {
    let text = fs::read_to_string("/proc/locks").ok()?;
    Some(parse_locks(&text))
}

fn parse_locks(text: &str) -> HashMap<FileKey, FlockInfo> {
    let mut table: HashMap<FileKey, FlockInfo> = HashMap::new();
    for line in text.lines() {
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        let waiting = fields.get(1) == Some(&"->");
        if waiting {
            fields.remove(1);
        }
        // id: TYPE ADVISORY ACCESS PID MAJ:MIN:INO START END
        let [_, kind, _, access, pid, file, ..] = fields.as_slice() else {
            continue;
        };
        if *kind != "FLOCK" {
            continue;
        }
        let Some(key) = parse_file(file) else { continue };
        let info = table.entry(key).or_default();
        if waiting {
            info.waiters += 1;
            continue;
        }
        let pid = pid.parse().unwrap_or(-1);
        match *access {
            "WRITE" => info.exclusive.push(pid),
            "READ" => info.shared.push(pid),
            _ => {}
        }
    }
    table
}

fn parse_file(field: &str) -> Option<FileKey> {
    let mut parts = field.split(':');
    let major = u64::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
    let ino = parts.next()?.parse().ok()?;
    Some((major, minor, ino))
}

/// Every file some other process has open, and whether every process could be looked at (without
/// root, other users' descriptors are hidden; then "nobody has it open" cannot be proven).
pub(crate) fn open_files() -> (HashSet<(u64, u64)>, bool) {
    use std::os::unix::fs::MetadataExt;
    let me = std::process::id().to_string();
    let mut open = HashSet::new();
    let mut complete = true;
    let Ok(procs) = fs::read_dir("/proc") else {
        return (open, false);
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            // A process that exited meanwhile has no files; one we may not look at might.
            if entry.path().exists() {
                complete = false;
            }
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(meta) = fs::metadata(fd.path()) {
                open.insert((meta.dev(), meta.ino()));
            }
        }
    }
    (open, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_holders_and_waiters() {
        let text = "1: FLOCK  ADVISORY  WRITE 101 fd:01:77 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 102 fd:01:77 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 103 00:2e:9 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 104 00:2e:9 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 105 fd:01:77 0 EOF\n\
                    garbage line\n";
        let t = parse_locks(text);
        assert_eq!(
            t[&(0xfd, 1, 77)],
            FlockInfo {
                exclusive: vec![101],
                shared: vec![],
                waiters: 1
            }
        );
        assert_eq!(
            t[&(0, 0x2e, 9)],
            FlockInfo {
                exclusive: vec![],
                shared: vec![103, 104],
                waiters: 0
            }
        );
    }
}
