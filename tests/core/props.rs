//! Property tests of the core's input handling (proptest: the stable toolchain here cannot run
//! cargo-fuzz, and proptest's shrinking gives readable counterexamples in ordinary `cargo test`).

use std::path::{Component, Path};

use ferrolock::names::{IdKind, validate_component, validate_relative};
use ferrolock::{Holder, Seconds, Wait, WriteOptions, atomic_write};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any bytes in a lock file (garbage, truncation, a legacy tool's content) are at worst "no record".
    #[test]
    fn holder_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Holder::parse(&bytes);
    }

    /// Truncating a valid record anywhere never yields a wrong record.
    #[test]
    fn truncated_records_are_rejected_or_whole(purpose in ".{0,40}", pid in 1u32..u32::MAX, cut in 0usize..200) {
        let line = serde_json::json!({"pid": pid, "host": "h", "since": "s", "purpose": purpose, "version": 1})
            .to_string();
        let cut = cut.min(line.len());
        if let Some(h) = Holder::parse(&line.as_bytes()[..cut]) {
            prop_assert_eq!(cut, line.len());
            prop_assert_eq!(h.pid, pid);
            prop_assert_eq!(h.purpose.as_deref(), Some(purpose.as_str()));
        }
    }

    /// An accepted id joined to a directory names a direct child of it.
    #[test]
    fn accepted_components_stay_inside(name in "\\PC{0,300}") {
        if let Ok(ok) = validate_component(IdKind::TaskId, &name) {
            let joined = Path::new("/base").join(ok);
            prop_assert_eq!(joined.parent(), Some(Path::new("/base")));
            prop_assert!(joined.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
        }
    }

    /// An accepted nested name never climbs out of its directory.
    #[test]
    fn accepted_relative_names_stay_inside(parts in proptest::collection::vec("[a-z.]{0,4}|\\.\\.|", 1..5)) {
        let name = parts.join("/");
        if let Ok(ok) = validate_relative(IdKind::LoopName, &name) {
            let joined = Path::new("/base").join(ok);
            prop_assert!(joined.starts_with("/base"));
            prop_assert!(joined.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
        }
    }

    /// Any float but NaN is a valid timeout: negative/infinite/huge wait forever, zero tries once.
    #[test]
    fn every_timeout_is_understood(t in any::<f64>()) {
        match Seconds::new(t) {
            Err(_) => prop_assert!(t.is_nan()),
            Ok(secs) => {
                let w = Wait::from_timeout(Some(secs));
                if t == 0.0 { prop_assert_eq!(w, Wait::Try); }
                if t < 0.0 || t == f64::INFINITY { prop_assert_eq!(w, Wait::Forever); }
                prop_assert!(!t.is_nan());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever is written is what is read back, and no temporary file is left.
    #[test]
    fn atomic_write_round_trips(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let dir = std::env::temp_dir().join(format!("ferrolock-prop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("f");
        atomic_write(&target, &data, &WriteOptions { durable: false, ..WriteOptions::default() }).unwrap();
        prop_assert_eq!(std::fs::read(&target).unwrap(), data);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(names.len(), 1);
    }
}
