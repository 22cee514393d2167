//! The data of a `STATE.md`: what the legacy `TaskState` and `WorkflowState` dataclasses hold, with
//! every value already in the text form the file shows.

/// Stands for a modified file the format recorded only as a count (`a.py, b.py, c.py (+2 more)`), so
/// the list keeps its length and the file renders back to the same bytes.
pub const FILE_PLACEHOLDER: &str = "...";

/// A task's status: the section it is listed in and its checkbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Status {
    /// `## 📋 Pending`, `[ ]`.
    #[default]
    Pending,
    /// `## 🔄 In Progress`, `[~]`.
    InProgress,
    /// `## ✅ Completed`, `[x]`.
    Completed,
    /// `## ❌ Failed`, `[ ]`.
    Failed,
    /// Any other status: kept, but (as in the legacy code) listed in no section, so not written.
    Other(String),
}

impl Status {
    /// The status for its name (`pending`, `in_progress`, `completed`, `failed`; anything else is
    /// [`Status::Other`]).
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        match name {
            "pending" => Self::Pending,
            "in_progress" => Self::InProgress,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name the legacy dataclass held.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Other(name) => name,
        }
    }
}

/// One task line and its detail lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Task {
    /// The bold id (`**task_1**`).
    pub id: String,
    /// The text after `**id**: `.
    pub description: String,
    /// The section and checkbox.
    pub status: Status,
    /// The wave the task belongs to: completed and pending tasks are grouped under `### Wave N`
    /// headers in ascending order of this number.
    pub wave: i64,
    /// What the `### Wave` header shows for this task's wave, if not the decimal `wave`. For a caller
    /// whose wave values are not integers (a Python float or string), `wave` is then the wave's rank in
    /// the caller's order and this is the value's text. Tasks of one wave share the first one's label.
    pub wave_label: Option<String>,
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
    /// See `current_wave`. A positive total also draws the progress bar.
    pub total_waves: i64,
    /// The status line as the caller computed it, for wave numbers that are not `i64` integers (see
    /// [`StatusLine`]); `None` derives it from `current_wave` and `total_waves`.
    pub status_line: Option<StatusLine>,
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

/// `Wave {current}/{total}` and the progress bar, for a caller whose wave numbers are of another kind
/// (a Python float, fraction or string, an integer beyond `i64`): their text, and the bar as that
/// caller's own arithmetic computes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusLine {
    /// The current wave's text.
    pub current: String,
    /// The number of waves' text.
    pub total: String,
    /// The bar, or `None` for none (the legacy code drew one only for a positive total).
    pub progress: Option<Progress>,
}

/// The progress bar: `**Progress:** `█…░…` {percent}%`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Filled cells of [`Progress::CELLS`]. Not clamped, as in the legacy code: a negative count
    /// draws none filled, one beyond the width draws a longer bar.
    pub filled: i64,
    /// The percentage shown (not clamped either).
    pub percent: i64,
}

impl Progress {
    /// The bar's width in cells.
    pub const CELLS: i64 = 20;

    /// The legacy computation for `current / total` as a float: `int(progress * 20)` cells and
    /// `int(progress * 100)` percent (truncated toward zero). `None` for a fraction that is not finite
    /// (no bar can show it).
    #[must_use]
    pub fn from_fraction(fraction: f64) -> Option<Self> {
        let filled = (fraction * 20.0).trunc();
        let percent = (fraction * 100.0).trunc();
        // `as` saturates; anything that large is refused by the renderer anyway.
        (filled.is_finite() && percent.is_finite()).then_some(Self {
            filled: filled as i64,
            percent: percent as i64,
        })
    }
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
