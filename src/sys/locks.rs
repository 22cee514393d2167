//! The kernel's table of flock locks (`/proc/locks`): which pid holds which file, in which mode, and
//! how many requests wait. It is what tells a genuine holder record from a forged one (the record's
//! pid must be the pid the kernel names), and what `ferrolock status` shows without touching files.

use std::collections::HashMap;
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

/// The flock locks on the file `dev`/`ino`, read from `/proc/locks` now; `None` if it cannot be read.
pub(crate) fn flock_info(dev: u64, ino: u64) -> Option<FlockInfo> {
    let text = fs::read_to_string("/proc/locks").ok()?;
    Some(parse_locks(&text).remove(&key_of(dev, ino)).unwrap_or_default())
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
