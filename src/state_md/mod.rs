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
mod validate;

pub use model::{FILE_PLACEHOLDER, ParsedWorkflow, Progress, Status, StatusLine, Task, Workflow};
pub use parse::{parse, parse_with};
pub use render::{RenderError, render, render_task};
pub use validate::{bad_checkbox_lines, validate};

/// `BlackBox5`'s state file, and the lock beside it (`STATE.md`'s name with `.lock` for `.md`).
pub const STATE_FILE: &str = "STATE.md";
/// See [`STATE_FILE`].
pub const STATE_LOCK_FILE: &str = "STATE.lock";

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

/// `data` as `STATE.md` text, or why it cannot be one: not UTF-8 (worded as Python's decoder words
/// it: `not valid UTF-8 (invalid start byte at byte 7)`), or [`corruption`].
///
/// # Errors
/// The reason, as text.
pub fn decode(data: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let start = e.valid_up_to();
        let reason = match (e.error_len(), data[start]) {
            (None, _) => "unexpected end of data",
            (Some(_), 0xC2..=0xF4) => "invalid continuation byte",
            (Some(_), _) => "invalid start byte",
        };
        format!("not valid UTF-8 ({reason} at byte {start})")
    })?;
    match corruption(text) {
        Some(reason) => Err(reason.to_owned()),
        None => Ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::{corruption, decode};

    #[test]
    fn detects_empty_and_foreign_content() {
        assert!(corruption("").is_some());
        assert!(corruption(" \n\t\n").is_some());
        assert!(corruption("CORRUPTED DATA!!!").is_some());
        assert!(corruption("# Workflow: x\n").is_none());
        assert!(corruption("**Status:** Wave 1/2\n").is_none());
    }

    #[test]
    fn decoding_words_bad_bytes_as_python_does() {
        let reason = |data: &[u8]| decode(data).unwrap_err();
        assert_eq!(
            reason(b"# Workflow: \xff"),
            "not valid UTF-8 (invalid start byte at byte 12)"
        );
        assert_eq!(
            reason(b"# W \xc3("),
            "not valid UTF-8 (invalid continuation byte at byte 4)"
        );
        assert_eq!(
            reason(b"# W \xe2\x9c"),
            "not valid UTF-8 (unexpected end of data at byte 4)"
        );
        assert_eq!(reason(b" \n"), "the file is empty");
        assert_eq!(decode("# Workflow: ✅".as_bytes()), Ok("# Workflow: ✅"));
    }
}
