//! The `STATE.md` format from Rust: the rendering the spec gives character by character, parsing it
//! back, and the legacy quirks that are kept (unclamped progress bars) or fixed (lost tasks).

use ferrolock::state_md::{
    FILE_PLACEHOLDER, Progress, Status, StatusLine, Task, Workflow, corruption, parse, render, render_task,
};

fn task(id: &str, description: &str, status: &str, wave: i64) -> Task {
    Task {
        id: id.into(),
        description: description.into(),
        status: Status::from_name(status),
        wave,
        ..Task::default()
    }
}

fn workflow(current: i64, total: i64, tasks: Vec<Task>) -> Workflow {
    Workflow {
        id: "wf_1".into(),
        name: "Demo".into(),
        current_wave: current,
        total_waves: total,
        started: "2025-01-15 10:00:00".into(),
        updated: "2025-01-15 11:00:00".into(),
        tasks,
        ..Workflow::default()
    }
}

const HEADER: &str = "# Workflow: Demo\n\n**Workflow ID:** `wf_1`\n**Status:** Wave 1/2\n\
    **Started:** 2025-01-15 10:00:00\n**Updated:** 2025-01-15 11:00:00\n\n---\n\n";

#[test]
fn renders_the_spec_format() {
    let mut done = task("a", "Alpha", "completed", 1);
    done.commit = Some("abc".into());
    done.files = vec![
        "1.py".into(),
        "2.py".into(),
        "3.py".into(),
        "4.py".into(),
        "5.py".into(),
    ];
    let mut broken = task("f", "Foxtrot", "failed", 1);
    broken.error = Some("boom".into());
    let mut w = workflow(
        1,
        2,
        vec![
            done,
            task("b", "Bravo", "in_progress", 1),
            task("c", "Charlie", "pending", 2),
            broken,
        ],
    );
    w.notes = vec!["first".into()];
    w.metadata = vec![("k".into(), "v".into())];
    let expected = format!(
        "{HEADER}**Progress:** `██████████░░░░░░░░░░` 50%\n\n\
         ## ✅ Completed (1 tasks)\n\n- [x] **a**: Alpha\n  - Commit: `abc`\n  - Files: 1.py, 2.py, 3.py (+2 more)\n\n\n\
         ## 🔄 In Progress (1 tasks)\n\n- [~] **b**: Bravo\n\n\n\
         ## 📋 Pending (1 tasks)\n\n### Wave 2\n- [ ] **c**: Charlie\n\n\n\
         ## ❌ Failed (1 tasks)\n\n- [ ] **f**: Foxtrot\n  - Error: boom\n\n\n\
         ## Notes\n\n- first\n\n## Metadata\n\n- **k:** v\n"
    );
    assert_eq!(render(&w).unwrap(), expected);

    let back = parse(&expected);
    assert_eq!(back.started.as_deref(), Some("2025-01-15 10:00:00"));
    assert_eq!(back.updated.as_deref(), Some("2025-01-15 11:00:00"));
    let mut again = back.workflow;
    again.started = w.started.clone();
    again.updated = w.updated.clone();
    assert_eq!(render(&again).unwrap(), expected, "parse then render is the identity");
    assert_eq!(again.tasks[0].files[3], FILE_PLACEHOLDER);
    assert_eq!(again.metadata, w.metadata);
}

#[test]
fn an_empty_workflow_ends_after_the_rule() {
    let w = workflow(0, 0, Vec::new());
    let text = render(&w).unwrap();
    assert!(text.ends_with("**Updated:** 2025-01-15 11:00:00\n\n---\n"), "{text:?}");
    assert!(!text.contains("Progress"), "no bar without waves");
}

#[test]
fn the_progress_bar_is_not_clamped_but_bounded() {
    let over = render(&workflow(3, 2, Vec::new())).unwrap();
    assert!(over.contains(&format!("`{}` 150%", "█".repeat(30))), "{over}");
    let negative = render(&workflow(-1, 4, Vec::new())).unwrap();
    assert!(negative.contains(&format!("`{}` -25%", "░".repeat(25))), "{negative}");
    assert!(render(&workflow(i64::MAX / 2, 1, Vec::new())).is_err());
}

#[test]
fn pending_tasks_of_past_waves_are_kept() {
    let w = workflow(
        2,
        3,
        vec![task("old", "Old", "pending", 1), task("new", "New", "pending", 3)],
    );
    let text = render(&w).unwrap();
    assert!(text.contains("### Wave 1\n- [ ] **old**: Old\n"), "{text}");
    let ids: Vec<String> = parse(&text).workflow.tasks.into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["old", "new"]);
}

#[test]
fn task_rendering_matches_the_legacy_task_lines() {
    let mut t = task("x", "Do", "weird", 0);
    assert_eq!(render_task(&t), "- [ ] **x**: Do");
    t.commit = Some(String::new());
    t.error = Some(String::new());
    assert_eq!(render_task(&t), "- [ ] **x**: Do", "empty details are not written");
}

#[test]
fn parses_hand_written_files_like_the_legacy_parser() {
    let text = "# Minimal Workflow\n\n**Status:** Wave 1/2\n\n## ✅ Completed\n- [x] **t1**: Done (IN PROGRESS)\n\
                - Commit: `abc`\n\n## ❌ Failed (1 tasks)\n\n- [ ] **t2**: Broke\n  - Error: Database down\n\
                - [ ] **t1**: duplicate, ignored\n\n## Notes\n- [x] **t3**: a note, not a task\n- plain\n";
    let parsed = parse(text);
    let w = parsed.workflow;
    assert_eq!(w.name, "Minimal Workflow");
    assert_eq!(w.id, "unknown");
    assert_eq!((w.current_wave, w.total_waves), (1, 2));
    assert_eq!(w.tasks.len(), 2);
    assert_eq!(w.tasks[0].description, "Done");
    assert_eq!(w.tasks[0].commit.as_deref(), Some("abc"));
    assert_eq!((&w.tasks[1].status, w.tasks[1].wave), (&Status::Failed, 1));
    assert_eq!(w.tasks[1].error.as_deref(), Some("Database down"));
    assert_eq!(w.notes, ["[x] **t3**: a note, not a task", "plain"]);
    assert_eq!(parsed.started, None);
}

#[test]
fn garbage_parses_to_defaults_and_is_flagged() {
    let parsed = parse("CORRUPTED DATA!!!");
    assert_eq!(parsed.workflow.name, "Unknown");
    assert!(parsed.workflow.tasks.is_empty());
    assert!(corruption("CORRUPTED DATA!!!").is_some());
    assert!(corruption("").is_some());
    assert!(corruption(&render(&workflow(0, 0, Vec::new())).unwrap()).is_none());
}

#[test]
fn a_callers_own_wave_values_are_shown_as_given() {
    let mut first = task("a", "A", "completed", 0);
    first.wave_label = Some("1.5".into());
    let mut second = task("b", "B", "completed", 1);
    second.wave_label = Some("w10".into());
    let mut w = workflow(0, 0, vec![second, first]);
    w.status_line = Some(StatusLine {
        current: "1.5".into(),
        total: "4.0".into(),
        progress: Progress::from_fraction(0.375),
    });
    let text = render(&w).unwrap();
    assert!(text.contains("**Status:** Wave 1.5/4.0\n"), "{text}");
    assert!(text.contains("`███████░░░░░░░░░░░░░` 37%"), "{text}");
    // Ordered by rank (`wave`), named by label.
    assert!(
        text.contains("### Wave 1.5\n- [x] **a**: A\n\n### Wave w10\n- [x] **b**: B\n"),
        "{text}"
    );
}

#[test]
fn a_bar_that_cannot_be_drawn_is_refused() {
    assert_eq!(Progress::from_fraction(f64::INFINITY), None);
    assert_eq!(Progress::from_fraction(f64::NAN), None);
    let mut w = workflow(0, 0, Vec::new());
    w.status_line = Some(StatusLine {
        current: "1e300".into(),
        total: "1".into(),
        progress: Some(Progress {
            filled: i64::MAX,
            percent: i64::MAX,
        }),
    });
    let err = render(&w).unwrap_err();
    assert!(err.to_string().contains("wave 1e300/1"), "{err}");
}
