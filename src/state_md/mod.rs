//! `BlackBox5`'s `STATE.md`: a human-readable workflow progress file, the format of its `state_manager`
//! module (which `ferrolock.compat.blackbox5` replaces).
//!
//! [`render`] produces the legacy `WorkflowState.to_markdown()` bytes, character for character, with two
//! deliberate differences: pending tasks of the current or an earlier wave are written (under their
//! `### Wave N` header, which the legacy parser reads back as pending) instead of silently dropped; and
//! a line break inside a field (a multi-line description or note) is written as a space, so a field
//! can never forge tasks, statuses, sections or metadata (the legacy file was line-based and wrote
//! them verbatim).
//!
//! [`parse`] follows the legacy parser's rules, so every file the legacy code wrote reads back the same,
//! with its bugs fixed:
//! * timestamps are read (the legacy parser tripped over the bold markup and always used "now");
//! * the `## Metadata` section is read (the legacy parser dropped it);
//! * `- Files:` lines become a list again (the legacy parser kept one string), with a placeholder per
//!   file the format summarised as `(+N more)`;
//! * in-progress and failed tasks get the current wave, and wave headers no longer leak from one
//!   section into the next;
//! * a task's status comes from its own checkbox at the start of its line (the legacy parser found
//!   `- [x]` anywhere in the line, so a description mentioning it marked the task completed);
//! * section headers are only lines that start with `## ` (a task whose description mentioned
//!   `## Completed` used to switch sections and vanish), and lines in `## Notes` or `## Metadata` are
//!   never taken for tasks or task details.
//!
//! Both are linear in the size of the file; the legacy Python code was quadratic in the number of tasks
//! with commit, file or error lines.
//!
//! This is the only renderer: the Python dataclasses hand their values over converted to text (with
//! Python's `format()`), and wave numbers that are not integers arrive as a [`StatusLine`] and as
//! per-task [`wave_label`](Task::wave_label)s with ranks, so every value reaches the file through here.

mod model;
mod parse;
mod render;
mod text;

pub use model::{FILE_PLACEHOLDER, ParsedWorkflow, Progress, Status, StatusLine, Task, Workflow};
pub use parse::{parse, parse_with};
pub use render::{RenderError, render, render_task};

/// Why a file cannot be a `STATE.md` at all (as opposed to one with odd content, which parses to
/// defaults as the legacy parser did): `None` if it can be.
///
/// Empty (or blank) content is what a crash of a writer that did not fsync leaves, and content with
/// neither a `# ` title nor a `Wave N/M` status line carries nothing the parser could recover. Writing
/// the defaults parsed from either would silently replace a workflow with an empty one.
#[must_use]
pub fn corruption(text: &str) -> Option<&'static str> {
    if text.chars().all(text::is_py_space) {
        return Some("the file is empty");
    }
    let has_title = text::lines(text).any(|l| l.starts_with("# "));
    if !has_title && parse::wave_ratio_anywhere(text).is_none() {
        return Some("no '# Workflow:' title and no 'Wave N/M' status line");
    }
    None
}

/// How many matches `re.findall(r'^- \[[^x~ ]\]', text, re.MULTILINE)` finds: lines (after a `\n`)
/// starting with a checkbox whose mark is not `x`, `~` or a space (the mark may even be a `\n`, as
/// the legacy pattern allows). The legacy validation's only check that reads the whole file.
#[must_use]
pub fn bad_checkbox_lines(text: &str) -> usize {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&start| {
            let Some(after) = text[start..].strip_prefix("- [") else {
                return false;
            };
            let mut chars = after.chars();
            matches!((chars.next(), chars.next()), (Some(mark), Some(']')) if !matches!(mark, 'x' | '~' | ' '))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::{bad_checkbox_lines, corruption};

    #[test]
    fn counts_bad_checkboxes_like_the_legacy_pattern() {
        assert_eq!(bad_checkbox_lines("- [x] a\n- [ ] b\n- [~] c"), 0);
        assert_eq!(bad_checkbox_lines("- [z] a\n  - [z] indented\n- [é] b\n- [\n]"), 3);
        assert_eq!(bad_checkbox_lines("x- [z]\r- [z]"), 0, "only \\n starts a line");
        assert_eq!(bad_checkbox_lines("- [zz]"), 0);
    }

    #[test]
    fn detects_empty_and_foreign_content() {
        assert!(corruption("").is_some());
        assert!(corruption(" \n\t\n").is_some());
        assert!(corruption("CORRUPTED DATA!!!").is_some());
        assert!(corruption("# Workflow: x\n").is_none());
        assert!(corruption("**Status:** Wave 1/2\n").is_none());
    }
}
