//! The descriptor-relative walk behind `ferrolock status` / `clean` (`ferrolock::inspect`): bounded
//! descriptors however deep the tree, climbing back only into the directory it left, and removals that
//! re-check the file. Races are driven to their window through the walk's own steps.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::common::TempDir;
use ferrolock::inspect::{self, Held, MAX_OPEN_DIRS, Step};

/// `top/d1/d2/.../d<depth>`; returns every level, shallowest first.
fn chain(top: &Path, depth: usize) -> Vec<PathBuf> {
    let mut levels = Vec::with_capacity(depth);
    let mut at = top.to_path_buf();
    for i in 1..=depth {
        at = at.join(format!("d{i}"));
        levels.push(at.clone());
    }
    fs::create_dir_all(&at).unwrap();
    levels
}

/// How many of this process's descriptors refer to something under `dir` (other tests' descriptors,
/// in other threads, are elsewhere).
fn descriptors_into(dir: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Names of `count` files created in `dir` that the kernel lists after `after`, so a depth-first walk
/// in listing order reaches them only once it is back from `after`.
fn listed_after(dir: &Path, after: &str, count: usize) -> Vec<String> {
    let mut late = Vec::new();
    for i in 0..count * 20 {
        fs::write(dir.join(format!("late{i}.lock")), b"").unwrap();
    }
    let mut seen_after = false;
    for entry in fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == after {
            seen_after = true;
        } else if name.starts_with("late") {
            if seen_after && late.len() < count {
                late.push(name);
            } else {
                fs::remove_file(dir.join(name)).unwrap();
            }
        }
    }
    assert_eq!(late.len(), count, "too few names listed after {after}");
    late
}

#[test]
fn a_tree_deeper_than_the_descriptor_bound_is_walked_with_at_most_that_many_open() {
    let dir = TempDir::new("walk-deep");
    let levels = chain(dir.path(), 120);
    for level in levels.iter().step_by(10) {
        fs::write(level.join("x.lock"), b"").unwrap();
    }
    let mut most = 0;
    let scan = inspect::scan(&[dir.path().to_owned()], &mut |step| {
        if let Step::Entering(_) = step {
            most = most.max(descriptors_into(dir.path()));
        }
    })
    .unwrap();
    assert_eq!(scan.locks.len(), 12);
    assert_eq!(scan.skipped, vec![]);
    assert!(most <= MAX_OPEN_DIRS, "{most} descriptors open at once");
    assert!(
        most >= MAX_OPEN_DIRS - 1,
        "the walk never held its bound: at most {most} open"
    );
}

#[test]
fn climbing_back_into_a_closed_level_checks_it_is_the_directory_it_left() {
    let dir = TempDir::new("walk-climb");
    let (tree, outside) = (dir.join("tree"), dir.join("outside"));
    let levels = chain(&tree, 30);
    fs::create_dir(&outside).unwrap();
    // d14's descriptor is closed by the time the walk is at d30; it has lock files listed after d15.
    let d14 = &levels[13];
    let late = listed_after(d14, "d15", 3);
    // The same names outside, held: a walk that trusted `..` would read these and call them held.
    let held: Vec<File> = late
        .iter()
        .map(|name| {
            let file = File::create(outside.join(name)).unwrap();
            file.lock().unwrap();
            file
        })
        .collect();
    let deepest = levels.last().unwrap().clone();
    let mut moved = false;
    let scan = inspect::scan(std::slice::from_ref(&tree), &mut |step| {
        if matches!(step, Step::Entering(p) if p == deepest) {
            // d15 (and the walk below it) moves away: `..` of d15 is now `outside`.
            fs::rename(&levels[14], outside.join("d15")).unwrap();
            moved = true;
        }
    })
    .unwrap();
    assert!(moved, "the walk never reached the bottom");
    for name in &late {
        let report = scan.locks.iter().find(|r| r.path == d14.join(name));
        assert_eq!(
            report.map(|r| r.held),
            Some(Held::Free),
            "{name} was read from the wrong directory"
        );
    }
    assert!(scan.locks.iter().all(|r| r.held == Held::Free));
    assert_eq!(scan.skipped, vec![]);
    drop(held);
}

#[test]
fn a_level_that_cannot_be_found_again_is_skipped_and_the_walk_goes_on() {
    let dir = TempDir::new("walk-lost");
    let (tree, outside) = (dir.join("tree"), dir.join("outside"));
    let levels = chain(&tree, 30);
    fs::create_dir(&outside).unwrap();
    let d14 = levels[13].clone();
    let late = listed_after(&d14, "d15", 2);
    fs::write(tree.join("top.lock"), b"").unwrap();
    let deepest = levels.last().unwrap().clone();
    let scan = inspect::scan(std::slice::from_ref(&tree), &mut |step| {
        if matches!(step, Step::Entering(p) if p == deepest) {
            // d15 moves away and d14 is replaced by another directory of the same name.
            fs::rename(&levels[14], outside.join("d15")).unwrap();
            fs::rename(&d14, outside.join("d14")).unwrap();
            fs::create_dir(&d14).unwrap();
            fs::write(d14.join("impostor.lock"), b"").unwrap();
        }
    })
    .unwrap();
    let paths: Vec<&Path> = scan.locks.iter().map(|r| r.path.as_path()).collect();
    assert!(
        paths.contains(&tree.join("top.lock").as_path()),
        "the walk did not go on"
    );
    for name in late.iter().map(String::as_str).chain(["impostor.lock"]) {
        assert!(
            !paths.contains(&d14.join(name).as_path()),
            "{name} reported from a replaced directory"
        );
    }
    assert_eq!(scan.skipped.len(), 1, "{:?}", scan.skipped);
    assert_eq!(scan.skipped[0].path, d14);
    assert!(
        scan.skipped[0].reason.contains("moved or replaced"),
        "{}",
        scan.skipped[0].reason
    );
}

#[test]
fn clean_removes_only_a_file_that_is_still_what_the_scan_judged() {
    let dir = TempDir::new("walk-recheck");
    let lock = |name: &str| dir.join(name).join(".jobs_index.lock");
    for name in ["replaced", "rewritten", "linked", "taken", "unused"] {
        fs::create_dir(dir.join(name)).unwrap();
        fs::write(lock(name), b"").unwrap();
    }
    fs::hard_link(lock("linked"), dir.join("linked").join("other-name")).unwrap();
    let mut taken = None;
    let report = inspect::clean(&[dir.path().to_owned()], false, &mut |step| {
        if let Step::Progress(_) = step {
            fs::remove_file(lock("replaced")).unwrap();
            fs::write(lock("replaced"), b"").unwrap();
            fs::write(lock("rewritten"), b"not a lock any more").unwrap();
            let file = File::open(lock("taken")).unwrap();
            file.lock().unwrap();
            taken = Some(file);
        }
    })
    .unwrap();
    assert!(taken.is_some(), "the scan never ended");
    let removed: Vec<&Path> = report.removed.iter().map(|c| c.path.as_path()).collect();
    assert_eq!(removed, vec![lock("unused").as_path()]);
    for name in ["replaced", "rewritten", "linked", "taken"] {
        assert!(lock(name).exists(), "{name} was removed");
    }
    let mut skipped: Vec<(&Path, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.path.as_path(), s.reason.as_str()))
        .collect();
    skipped.sort_unstable();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, lock("linked"));
    assert!(skipped[0].1.contains("2 hard links"), "{}", skipped[0].1);
    assert_eq!(skipped[1].0, lock("rewritten"));
    assert!(skipped[1].1.contains("lock's content"), "{}", skipped[1].1);
}

#[test]
fn a_root_that_is_a_symlink_or_missing_is_an_error_and_nothing_is_walked() {
    let dir = TempDir::new("walk-roots");
    fs::create_dir(dir.join("real")).unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("link")).unwrap();
    let walk = |root: &str| inspect::scan(&[dir.join(root)], &mut |_| {});
    assert!(matches!(walk("link"), Err(ferrolock::Error::Symlink { .. })));
    assert!(matches!(walk("missing"), Err(ferrolock::Error::Io { .. })));
    assert!(walk("real").unwrap().locks.is_empty());
}
