//! Rust-only hand-off and uncontended-cycle harness: where a hand-off's time goes, without Python.
//!
//!     cargo run --release --example handoff -- handoff [SAMPLES]   (interleaved A/B of every variant)
//!     cargo run --release --example handoff -- cycle [CYCLES]      (uncontended acquire+release)
//!
//! A holder (this process) takes the lock, tells a waiter (a child process running this binary) to
//! wait, sleeps 10-30 ms so the waiter is asleep in the kernel, then releases at `t0`
//! (`CLOCK_MONOTONIC`). The waiter timestamps the moment its acquire returns (`t1`) and the CPU it
//! slept and woke on. The variants run interleaved, round after round, so load on a shared machine
//! hits them alike:
//!
//! * `floor`: a bare blocking `flock(LOCK_EX)` on an open descriptor, what the kernel alone costs;
//! * `floor+getppid`: the floor plus the cheapest system call there is, to tell what any call costs
//!   right after a wake-up from what the file system's calls cost;
//! * `floor+lstat`, `floor+statx` (inode only), `floor+pwrite` and combinations: the floor plus the
//!   protocol's calls after winning (the verify and the holder record), replayed raw;
//! * `plain`: `FileLock::acquire_as` with nothing that could end the wait early (blocks in `flock`);
//! * `signal`: the same with a deadline, so the signal mechanism arms its timer (the Python main
//!   thread's case: it always has a periodic Ctrl-C check);
//! * `thread`: the same deadline, with `FERROLOCK_WAKE=thread` (helper thread and eventfd).
//!
//! Run it under `strace -f -T -tt` to see each system call of a hand-off with its duration.
#![allow(unsafe_code)] // sched_getcpu(3) only: a harness, not the library
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrolock::{FileLock, LockOptions, Owner, Wait, WaitControl};
use nix::libc;
use nix::sys::stat::lstat;
use nix::time::{ClockId, clock_gettime};

const VARIANTS: [&str; 10] = [
    "floor",
    "floor+getppid",
    "floor+lstat",
    "floor+statx",
    "floor+pwrite",
    "floor+lstat+pwrite",
    "floor+statx+pwrite",
    "plain",
    "signal",
    "thread",
];

fn now_ns() -> i64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("monotonic clock");
    t.tv_sec() * 1_000_000_000 + t.tv_nsec()
}

fn cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    unsafe { libc::sched_getcpu() }
}

/// The lock as one variant takes and releases it.
enum Lock {
    Raw {
        file: std::fs::File,
        path: PathBuf,
        steps: String,
    },
    Ferro {
        lock: FileLock,
        deadline: bool,
    },
}

impl Lock {
    fn new(variant: &str, path: &Path) -> Self {
        match variant {
            v if v.starts_with("floor") => Self::Raw {
                file: std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .expect("open lock file"),
                path: path.to_path_buf(),
                steps: variant.to_owned(),
            },
            _ => Self::Ferro {
                lock: FileLock::new(path, &LockOptions::default()).expect("lock"),
                deadline: variant != "plain",
            },
        }
    }

    /// Acquires; returns when `flock` itself returned for the raw variants (0 for the library's).
    fn acquire(&self) -> i64 {
        match self {
            Self::Raw { file, path, steps } => {
                flock_raw(file, libc::LOCK_EX);
                let locked = now_ns();
                if steps.contains("getppid") {
                    let _ = nix::unistd::getppid();
                }
                if steps.contains("lstat") {
                    let _ = lstat(path.as_path()).expect("lstat");
                }
                if steps.contains("statx") {
                    statx_ino(path);
                }
                if steps.contains("pwrite") {
                    let record = format!("{{\"pid\":{},\"since\":\"{}\"}}\n", std::process::id(), now_ns());
                    file.write_all_at(record.as_bytes(), 0).expect("pwrite");
                }
                locked
            }
            Self::Ferro { lock, deadline } => {
                let wait = if *deadline {
                    Wait::after(Duration::from_secs(60))
                } else {
                    Wait::Forever
                };
                lock.acquire_as(Owner::current_thread(), wait, &mut WaitControl::default())
                    .expect("acquire");
                0
            }
        }
    }

    fn release(&self) {
        match self {
            Self::Raw { file, .. } => flock_raw(file, libc::LOCK_UN),
            Self::Ferro { lock, .. } => {
                lock.release_as(Owner::current_thread(), false).expect("release");
            }
        }
    }
}

/// A bare blocking `flock(2)`, as a C program would call it.
fn flock_raw(file: &std::fs::File, op: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a live descriptor for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    assert_eq!(rc, 0, "flock");
}

/// The waiter process: for each "go VARIANT", say "waiting", acquire, and report `t1 cpu_before cpu_after`.
fn waiter(path: &Path) {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let locks: Vec<(&str, Lock)> = VARIANTS.iter().map(|v| (*v, Lock::new(v, path))).collect();
    for line in stdin.lock().lines() {
        let line = line.expect("read");
        let Some(variant) = line.strip_prefix("go ") else { break };
        let lock = &locks.iter().find(|(v, _)| *v == variant).expect("variant").1;
        if variant == "thread" {
            ferrolock::set_wake_mechanism(ferrolock::WakeMechanism::Thread);
        } else {
            ferrolock::set_wake_mechanism(ferrolock::WakeMechanism::Signal);
        }
        let before = cpu();
        writeln!(out, "waiting").expect("write");
        out.flush().expect("flush");
        let locked = lock.acquire();
        let t1 = now_ns();
        let after = cpu();
        lock.release();
        writeln!(out, "{t1} {before} {after} {}", if locked == 0 { t1 } else { locked }).expect("write");
        out.flush().expect("flush");
    }
}

/// `statx` asking for the inode number only: no timestamps requested.
fn statx_ino(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: valid C string and output buffer for the duration of the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_INO,
            buf.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "statx");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn handoff(samples: usize, path: &Path) {
    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .args(["waiter", path.to_str().expect("utf-8 path")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn waiter");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut from_child = BufReader::new(child.stdout.take().expect("stdout"));
    let holders: Vec<Lock> = VARIANTS.iter().map(|v| Lock::new(v, path)).collect();
    let mut lat: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut after_flock: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    let mut migrated = vec![0usize; VARIANTS.len()];
    let mut same_cpu_as_holder = vec![0usize; VARIANTS.len()];
    let mut seed = 0x9e37_79b9_u64;
    // HANDOFF_VARIANTS=floor,signal limits the run (for profiling one path).
    let only = std::env::var("HANDOFF_VARIANTS").ok();
    let chosen = |v: &str| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == v));
    for round in 0..samples {
        for (k, variant) in VARIANTS.iter().enumerate() {
            if !chosen(variant) {
                continue;
            }
            // The holder side is always the floor's: only the waiter's path differs between variants.
            let holder = &holders[0];
            let _ = holder.acquire();
            writeln!(to_child, "go {variant}").expect("write");
            let mut line = String::new();
            from_child.read_line(&mut line).expect("read");
            assert_eq!(line.trim(), "waiting", "round {round}");
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_micros(10_000 + seed % 20_000));
            let holder_cpu = cpu();
            let t0 = now_ns();
            holder.release();
            line.clear();
            from_child.read_line(&mut line).expect("read");
            let mut it = line.split_whitespace().map(|x| x.parse::<i64>().expect("number"));
            let (t1, before, after) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            let locked = it.next().unwrap();
            lat[k].push((t1 - t0) as f64 / 1000.0);
            after_flock[k].push((t1 - locked) as f64 / 1000.0);
            migrated[k] += usize::from(before != after);
            same_cpu_as_holder[k] += usize::from(after == i64::from(holder_cpu));
        }
    }
    drop(to_child);
    let _ = child.wait();
    println!(
        "| waiter | p10 | median | p90 | p99 | after flock returned (median) | woke on another CPU than it slept | woke on the holder's CPU |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (k, variant) in VARIANTS.iter().enumerate() {
        if lat[k].is_empty() {
            continue;
        }
        let mut xs = lat[k].clone();
        xs.sort_by(f64::total_cmp);
        let mut steps = after_flock[k].clone();
        steps.sort_by(f64::total_cmp);
        println!(
            "| {variant} | {:.1} us | {:.1} us | {:.1} us | {:.1} us | {:.1} us | {}/{samples} | {}/{samples} |",
            percentile(&xs, 0.10),
            percentile(&xs, 0.5),
            percentile(&xs, 0.9),
            percentile(&xs, 0.99),
            percentile(&steps, 0.5),
            migrated[k],
            same_cpu_as_holder[k],
        );
    }
}

fn cycle(cycles: u32, path: &Path) {
    println!("| uncontended acquire+release | per cycle |");
    println!("|---|---:|");
    for variant in VARIANTS.iter().take(8) {
        let lock = Lock::new(variant, path);
        let _ = lock.acquire();
        lock.release();
        let start = Instant::now();
        for _ in 0..cycles {
            let _ = lock.acquire();
            lock.release();
        }
        let per = start.elapsed().as_secs_f64() / f64::from(cycles) * 1e9;
        println!("| {variant} | {per:.0} ns |");
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let record = format!("{{\"pid\":{},\"since\":\"{}\"}}\n", std::process::id(), now_ns());
    let start = Instant::now();
    for _ in 0..cycles {
        let _ = lstat(path).expect("lstat");
    }
    println!(
        "| lstat alone | {:.0} ns |",
        start.elapsed().as_secs_f64() / f64::from(cycles) * 1e9
    );
    let start = Instant::now();
    for _ in 0..cycles {
        statx_ino(path);
    }
    println!(
        "| statx(STATX_INO) alone | {:.0} ns |",
        start.elapsed().as_secs_f64() / f64::from(cycles) * 1e9
    );
    let start = Instant::now();
    for _ in 0..cycles {
        let _ = nix::sys::stat::fstat(&file).expect("fstat");
    }
    println!(
        "| fstat alone | {:.0} ns |",
        start.elapsed().as_secs_f64() / f64::from(cycles) * 1e9
    );
    let start = Instant::now();
    for _ in 0..cycles {
        file.write_all_at(record.as_bytes(), 0).expect("pwrite");
    }
    println!(
        "| pwrite alone | {:.0} ns |",
        start.elapsed().as_secs_f64() / f64::from(cycles) * 1e9
    );
    let mut buf = [0u8; 128];
    let start = Instant::now();
    for _ in 0..cycles {
        let _ = file.read_at(&mut buf, 0).expect("pread");
    }
    println!(
        "| pread alone | {:.0} ns |",
        start.elapsed().as_secs_f64() / f64::from(cycles) * 1e9
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // HANDOFF_DIR=/dev/shm measures on tmpfs instead of the temporary directory's file system.
    let base = std::env::var_os("HANDOFF_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("ferrolock-handoff-{}", std::process::id()));
    match args.get(1).map(String::as_str) {
        Some("waiter") => waiter(Path::new(&args[2])),
        Some("cycle") => {
            std::fs::create_dir_all(&dir).expect("dir");
            cycle(
                args.get(2).map_or(200_000, |n| n.parse().expect("cycles")),
                &dir.join("x.lock"),
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => {
            std::fs::create_dir_all(&dir).expect("dir");
            handoff(
                args.get(2).map_or(200, |n| n.parse().expect("samples")),
                &dir.join("x.lock"),
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
