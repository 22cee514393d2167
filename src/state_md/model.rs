//! The data of a `STATE.md`: what the legacy `TaskState` and `WorkflowState` dataclasses hold, with
//! every value already in the text form the file shows.

/// Stands for a modified file the format recorded only as a count (`a.py, b.py, c.py (+2 more)`), so
/// the list keeps its length and the file renders back to the same bytes.
pub const FILE_PLACEHOLDER: &str = "...";

/// One task line and its detail lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Task {
    /// The bold id (`**task_1**`).
    pub id: String,
    /// The text after `**id**: `.
    pub description: String,
    /// `pending`, `in_progress`, `completed` or `failed`; anything else is kept but belongs to no
    /// section (as in the legacy code, such a task is not written).
    pub status: String,
    /// The wave the task belongs to.
    pub wave: i64,
    /// Modified files; the file shows the first three and a count of the rest.
    pub files: Vec<String>,
    /// The commit hash, if any (an empty one is not written).
    pub commit: Option<String>,
    /// The error, if any (an empty one is not written).
    pub error: Option<String>,
}

/// A whole workflow, ready to render.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workflow {
    /// The backticked `Workflow ID`.
    pub id: String,
    /// The name after `# Workflow: `.
    pub name: String,
    /// `Wave {current_wave}/{total_waves}`.
    pub current_wave: i64,
    /// See `current_wave`.
    pub total_waves: i64,
    /// `%Y-%m-%d %H:%M:%S`, as the caller formatted it.
    pub started: String,
    /// See `started`.
    pub updated: String,
    /// In insertion order (the order of the legacy dict).
    pub tasks: Vec<Task>,
    /// One `- note` line each.
    pub notes: Vec<String>,
    /// One `- **key:** value` line each, in order.
    pub metadata: Vec<(String, String)>,
}

/// What [`parse`](super::parse) finds in a file. The timestamps stay text: the caller decides how to
/// turn them into times, and what "missing" means (the legacy code used "now").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedWorkflow {
    /// Everything but the timestamps (`started` and `updated` are left empty).
    pub workflow: Workflow,
    /// The first `Started:` value in `YYYY-MM-DD HH:MM:SS` form, if any.
    pub started: Option<String>,
    /// The first `Updated:` value in that form, if any.
    pub updated: Option<String>,
}
