//! Writing a `STATE.md`: the legacy `to_markdown()` bytes (see the module docs of [`super`] for the two
//! deliberate differences).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{Task, Workflow};
use super::text::one_line;

/// The legacy progress bar is not clamped: `Wave 30/1` draws 600 cells. Beyond this many the input is
/// refused instead of allocating an absurd line.
const MAX_BAR_CELLS: f64 = 1_000_000.0;

/// [`render`] refuses a workflow whose progress bar would be absurdly long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the progress bar for wave {current}/{total} would be longer than a million characters")]
pub struct RenderError {
    /// The current wave.
    pub current: i64,
    /// The number of waves.
    pub total: i64,
}

/// The file content for `w` (it ends with `\n`).
///
/// # Errors
/// [`RenderError`] for a progress bar longer than a million cells.
pub fn render(w: &Workflow) -> Result<String, RenderError> {
    let mut out = String::with_capacity(512 + w.tasks.len() * 64);
    let _ = write!(
        out,
        "# Workflow: {}\n\n**Workflow ID:** `{}`\n**Status:** Wave {}/{}\n**Started:** {}\n**Updated:** {}\n\n---\n\n",
        one_line(&w.name),
        one_line(&w.id),
        w.current_wave,
        w.total_waves,
        one_line(&w.started),
        one_line(&w.updated)
    );
    if w.total_waves > 0 {
        // Python: progress = current / total; int(progress * 20); int(progress * 100).
        let progress = w.current_wave as f64 / w.total_waves as f64;
        let filled = (progress * 20.0).trunc();
        if filled.abs() > MAX_BAR_CELLS {
            return Err(RenderError {
                current: w.current_wave,
                total: w.total_waves,
            });
        }
        let filled = filled as i64;
        let pct = (progress * 100.0).trunc() as i64;
        out.push_str("**Progress:** `");
        out.push_str(&"█".repeat(filled.max(0) as usize));
        out.push_str(&"░".repeat((20 - filled).max(0) as usize));
        let _ = write!(out, "` {pct}%\n\n");
    }
    let by_status = |status: &str| -> Vec<&Task> { w.tasks.iter().filter(|t| t.status == status).collect() };

    let completed = by_status("completed");
    if !completed.is_empty() {
        let _ = write!(out, "## ✅ Completed ({} tasks)\n\n", completed.len());
        let waves = group_by_wave(&completed);
        for (wave, tasks) in &waves {
            if waves.len() > 1 {
                let _ = writeln!(out, "### Wave {wave}");
            }
            for task in tasks {
                push_task(&mut out, task);
            }
        }
        out.push('\n');
    }
    push_flat_section(&mut out, &by_status("in_progress"), "## 🔄 In Progress");
    let pending = by_status("pending");
    if !pending.is_empty() {
        let _ = write!(out, "## 📋 Pending ({} tasks)\n\n", pending.len());
        // The legacy renderer skipped waves up to the current one here, losing those tasks on the
        // next write; they are kept (the legacy parser reads them back as pending).
        for (wave, tasks) in group_by_wave(&pending) {
            let _ = writeln!(out, "### Wave {wave}");
            for task in tasks {
                let _ = writeln!(out, "- [ ] **{}**: {}", one_line(&task.id), one_line(&task.description));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    push_flat_section(&mut out, &by_status("failed"), "## ❌ Failed");
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
    let checkbox = match task.status.as_str() {
        "completed" => "[x]",
        "in_progress" => "[~]",
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

/// Tasks grouped by wave, waves ascending, tasks in their original order.
fn group_by_wave<'a>(tasks: &[&'a Task]) -> BTreeMap<i64, Vec<&'a Task>> {
    let mut waves: BTreeMap<i64, Vec<&Task>> = BTreeMap::new();
    for task in tasks {
        waves.entry(task.wave).or_default().push(task);
    }
    waves
}
