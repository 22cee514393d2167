//! Writing a `STATE.md`: the legacy `to_markdown()` bytes (see the module docs of [`super`] for the two
//! deliberate differences).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{Progress, Status, StatusLine, Task, Workflow};
use super::text::one_line;

/// The legacy progress bar is not clamped: `Wave 30/1` draws 600 cells. Beyond this many the input is
/// refused instead of allocating an absurd line.
const MAX_BAR_CELLS: i64 = 1_000_000;

/// [`render`] refuses a workflow whose progress bar would be absurdly long (or cannot be computed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the progress bar for wave {current}/{total} would be longer than a million characters")]
pub struct RenderError {
    /// The current wave, as the file would show it.
    pub current: String,
    /// The number of waves, likewise.
    pub total: String,
}

/// The file content for `w` (it ends with `\n`).
///
/// # Errors
/// [`RenderError`] for a progress bar longer than a million cells.
pub fn render(w: &Workflow) -> Result<String, RenderError> {
    let mut out = String::with_capacity(512 + w.tasks.len() * 64);
    let StatusLine {
        current,
        total,
        progress,
    } = status_line(w)?;
    let _ = write!(
        out,
        "# Workflow: {}\n\n**Workflow ID:** `{}`\n**Status:** Wave {}/{}\n**Started:** {}\n**Updated:** {}\n\n---\n\n",
        one_line(&w.name),
        one_line(&w.id),
        one_line(&current),
        one_line(&total),
        one_line(&w.started),
        one_line(&w.updated)
    );
    if let Some(Progress { filled, percent }) = progress {
        out.push_str("**Progress:** `");
        out.push_str(&"█".repeat(filled.max(0) as usize));
        out.push_str(&"░".repeat((Progress::CELLS - filled).max(0) as usize));
        let _ = write!(out, "` {percent}%\n\n");
    }
    let by_status = |status: Status| -> Vec<&Task> { w.tasks.iter().filter(|t| t.status == status).collect() };

    let completed = by_status(Status::Completed);
    if !completed.is_empty() {
        let _ = write!(out, "## ✅ Completed ({} tasks)\n\n", completed.len());
        let waves = group_by_wave(&completed);
        for tasks in waves.values() {
            if waves.len() > 1 {
                push_wave_header(&mut out, tasks[0]);
            }
            for task in tasks {
                push_task(&mut out, task);
            }
        }
        out.push('\n');
    }
    push_flat_section(&mut out, &by_status(Status::InProgress), "## 🔄 In Progress");
    let pending = by_status(Status::Pending);
    if !pending.is_empty() {
        let _ = write!(out, "## 📋 Pending ({} tasks)\n\n", pending.len());
        // The legacy renderer skipped waves up to the current one here, losing those tasks on the
        // next write; they are kept (the legacy parser reads them back as pending).
        for tasks in group_by_wave(&pending).values() {
            push_wave_header(&mut out, tasks[0]);
            for task in tasks {
                let _ = writeln!(out, "- [ ] **{}**: {}", one_line(&task.id), one_line(&task.description));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    push_flat_section(&mut out, &by_status(Status::Failed), "## ❌ Failed");
    if !w.notes.is_empty() {
        out.push_str("## Notes\n\n");
        for note in &w.notes {
            let _ = writeln!(out, "- {}", one_line(note));
        }
        out.push('\n');
    }
    if !w.metadata.is_empty() {
        out.push_str("## Metadata\n\n");
        for (key, value) in &w.metadata {
            let _ = writeln!(out, "- **{}:** {}", one_line(key), one_line(value));
        }
        out.push('\n');
    }
    // Every line above was written with its newline; the legacy code joined its lines with "\n", and
    // its last line is always the empty one, so the file ends with exactly one "\n" less.
    out.pop();
    Ok(out)
}

/// One task as the legacy `TaskState.to_markdown()` wrote it (no trailing newline).
#[must_use]
pub fn render_task(task: &Task) -> String {
    let mut out = String::with_capacity(64);
    push_task(&mut out, task);
    out.pop(); // push_task ends the task with "\n\n" (its line list, then the blank line after it)
    out.pop();
    out
}

/// The task's lines, then the blank line the section puts after each task.
fn push_task(out: &mut String, task: &Task) {
    let checkbox = match task.status {
        Status::Completed => "[x]",
        Status::InProgress => "[~]",
        _ => "[ ]",
    };
    let _ = write!(
        out,
        "- {checkbox} **{}**: {}",
        one_line(&task.id),
        one_line(&task.description)
    );
    if let Some(commit) = task.commit.as_deref().filter(|c| !c.is_empty()) {
        let _ = write!(out, "\n  - Commit: `{}`", one_line(commit));
    }
    if !task.files.is_empty() {
        out.push_str("\n  - Files: ");
        for (i, file) in task.files.iter().take(3).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&one_line(file));
        }
        if task.files.len() > 3 {
            let _ = write!(out, " (+{} more)", task.files.len() - 3);
        }
    }
    if let Some(error) = task.error.as_deref().filter(|e| !e.is_empty()) {
        let _ = write!(out, "\n  - Error: {}", one_line(error));
    }
    out.push_str("\n\n");
}

fn push_flat_section(out: &mut String, tasks: &[&Task], header: &str) {
    if tasks.is_empty() {
        return;
    }
    let _ = write!(out, "{header} ({} tasks)\n\n", tasks.len());
    for task in tasks {
        push_task(out, task);
    }
    out.push('\n');
}

/// The status line: the caller's own (see [`StatusLine`]), or computed from the integers as the legacy
/// code did. A bar longer than [`MAX_BAR_CELLS`] (or one that cannot be computed) is refused.
fn status_line(w: &Workflow) -> Result<StatusLine, RenderError> {
    let line = if let Some(line) = &w.status_line {
        line.clone()
    } else {
        // Python: progress = current / total, a float; exact here for integers up to 2^53.
        let fraction = w.current_wave as f64 / w.total_waves as f64;
        let progress = (w.total_waves > 0).then(|| Progress::from_fraction(fraction));
        StatusLine {
            current: w.current_wave.to_string(),
            total: w.total_waves.to_string(),
            // An unrepresentable bar is marked as one too long to draw.
            progress: progress.map(|p| {
                p.unwrap_or(Progress {
                    filled: i64::MAX,
                    percent: i64::MAX,
                })
            }),
        }
    };
    if line.progress.is_some_and(|p| p.filled.abs() > MAX_BAR_CELLS) {
        return Err(RenderError {
            current: line.current,
            total: line.total,
        });
    }
    Ok(line)
}

/// `### Wave N` for the wave of `first`, the first task of its group.
fn push_wave_header(out: &mut String, first: &Task) {
    match &first.wave_label {
        Some(label) => {
            let _ = writeln!(out, "### Wave {}", one_line(label));
        }
        None => {
            let _ = writeln!(out, "### Wave {}", first.wave);
        }
    }
}

/// Tasks grouped by wave, waves ascending, tasks in their original order.
fn group_by_wave<'a>(tasks: &[&'a Task]) -> BTreeMap<i64, Vec<&'a Task>> {
    let mut waves: BTreeMap<i64, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        waves.entry(task.wave).or_default().push(task);
    }
    waves
}
