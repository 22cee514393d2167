//! Reading a `STATE.md` back: the legacy parser's rules, one pass over the lines, with the fixes listed
//! in the module docs of [`super`].

use std::collections::{HashMap, HashSet};

use super::model::{FILE_PLACEHOLDER, ParsedWorkflow, Status, Task, Workflow};
use super::text::{first_backticked, leading_number, lines, py_strip, remove_dash_label, skip_chars};

/// More placeholders than this means the count is not a real one; the line is then kept as one entry.
const MAX_PLACEHOLDERS: i64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Completed,
    InProgress,
    Pending,
    Failed,
    /// `## Notes` and `## Metadata`: no tasks and no task details in there.
    Prose,
}

impl Section {
    fn status(self) -> Status {
        match self {
            Self::Completed => Status::Completed,
            Self::InProgress => Status::InProgress,
            Self::Failed => Status::Failed,
            Self::Pending | Self::Prose => Status::Pending,
        }
    }

    /// The section a `## ` line starts; `None` keeps the current one (as the legacy parser did for
    /// headers it did not know).
    fn from_header(line: &str) -> Option<Self> {
        let has = |a: &str, b: &str| line.contains(a) || line.contains(b);
        if has("## ✅ Completed", "## Completed") {
            Some(Self::Completed)
        } else if has("## 🔄 In Progress", "## In Progress") {
            Some(Self::InProgress)
        } else if has("## 📋 Pending", "## Pending") {
            Some(Self::Pending)
        } else if has("## ❌ Failed", "## Failed") {
            Some(Self::Failed)
        } else if line.starts_with("## Notes") || line.starts_with("## Metadata") {
            Some(Self::Prose)
        } else {
            None
        }
    }
}

/// Parses `STATE.md` content. Never fails: content that is not a state file gives the legacy defaults
/// (name `Unknown`, id `unknown`, waves 0/0, no tasks); [`corruption`](super::corruption) tells such
/// content apart.
#[must_use]
pub fn parse(content: &str) -> ParsedWorkflow {
    parse_with(content, true)
}

/// [`parse`], optionally without the tasks (the header, timestamps, notes and metadata only: what a
/// rewrite from new task lists carries over), which skips most of the work on a large file.
#[must_use]
pub fn parse_with(content: &str, tasks: bool) -> ParsedWorkflow {
    let all: Vec<&str> = lines(content).collect();
    let mut w = Workflow {
        name: "Unknown".to_owned(),
        id: "unknown".to_owned(),
        ..Workflow::default()
    };
    if let Some(line) = all.iter().find(|l| l.starts_with("# ")) {
        let skip = if line.starts_with("# Workflow:") { 12 } else { 2 };
        py_strip(skip_chars(line, skip)).clone_into(&mut w.name);
    }
    if let Some(id) = all
        .iter()
        .filter(|l| l.contains("Workflow ID:"))
        .find_map(|l| first_backticked(l))
    {
        id.clone_into(&mut w.id);
    }
    if let Some((current, total)) = all
        .iter()
        .filter(|l| l.contains("Wave") && l.contains('/'))
        .find_map(|l| wave_ratio(l))
    {
        w.current_wave = current;
        w.total_waves = total;
    }
    if tasks {
        w.tasks = parse_tasks(&all, w.current_wave);
    }
    w.notes = section_lines(&all, "## Notes")
        .filter_map(|l| py_strip(l).strip_prefix("- ").map(str::to_owned))
        .collect();
    w.metadata = dict_like(section_lines(&all, "## Metadata").filter_map(metadata_entry));
    ParsedWorkflow {
        started: timestamp_after(&all, "Started:"),
        updated: timestamp_after(&all, "Updated:"),
        workflow: w,
    }
}

fn parse_tasks(all: &[&str], current_wave: i64) -> Vec<Task> {
    // A task takes a line or more: sized up front, neither grows while the file is read.
    let mut tasks: Vec<Task> = Vec::with_capacity(all.len() / 2);
    let mut seen: HashSet<&str> = HashSet::with_capacity(all.len() / 2);
    let mut section: Option<Section> = None;
    // The `### Wave N` header seen in the current section, if any.
    let mut section_wave: Option<i64> = None;
    for &line in all {
        if line.starts_with("## ") {
            if let Some(s) = Section::from_header(line) {
                section = Some(s);
            }
            section_wave = None;
            continue;
        }
        if line.starts_with("### Wave ") {
            if let Some(n) = wave_number(line) {
                section_wave = Some(n);
            }
            continue;
        }
        if section == Some(Section::Prose) {
            continue;
        }
        let stripped = py_strip(line);
        if stripped.starts_with("- [") && contains_double_star(line) {
            let Some((id, description)) = task_line(line) else {
                continue;
            };
            if !seen.insert(id) {
                continue; // the first occurrence wins
            }
            // The task's own checkbox, where the renderer writes it. (The legacy parser searched the
            // whole line, so a description mentioning "- [x]" marked its task completed.)
            let status = if stripped.starts_with("- [x]") {
                Status::Completed
            } else if stripped.starts_with("- [~]") {
                Status::InProgress
            } else {
                section.map_or(Status::Pending, Section::status)
            };
            let wave = section_wave.unwrap_or(match section {
                // Written without wave headers, always for the current wave.
                Some(Section::InProgress | Section::Failed) => current_wave,
                _ => 0,
            });
            tasks.push(Task {
                id: id.to_owned(),
                description: strip_in_progress(description).to_owned(),
                status,
                wave,
                ..Task::default()
            });
            continue;
        }
        // Detail lines belong to the most recently added task.
        let Some(last) = tasks.last_mut() else { continue };
        if stripped.starts_with("- Commit:") {
            if let Some(hash) = first_backticked(line) {
                last.commit = Some(hash.to_owned());
            }
        } else if stripped.starts_with("- Files:") {
            let files = remove_dash_label(line, "Files:");
            let files = py_strip(&files);
            if !files.is_empty() {
                last.files = split_files(files);
            }
        } else if stripped.starts_with("- Error:") {
            let error = remove_dash_label(line, "Error:");
            last.error = Some(py_strip(&error).to_owned());
            last.status = Status::Failed;
        }
    }
    tasks
}

/// `"**" in line`, without setting up a substring searcher for every line.
fn contains_double_star(line: &str) -> bool {
    line.as_bytes().windows(2).any(|pair| pair == b"**")
}

/// `\*\*([^*]+)\*\*:\s*(.+)`, searched: the first bold run of non-`*` characters followed by `:` and
/// at least one more character. Returns the stripped id and description.
fn task_line(line: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(found) = line[from..].find("**") {
        let open = from + found;
        let body_start = open + 2;
        let body_len = line[body_start..].find('*').unwrap_or(line.len() - body_start);
        let close = body_start + body_len;
        if body_len > 0 && line[close..].starts_with("**:") {
            let rest = &line[close + 3..];
            if !rest.is_empty() {
                return Some((py_strip(&line[body_start..close]), py_strip(rest)));
            }
        }
        from = open + 1;
    }
    None
}

/// Removes a trailing ` (IN PROGRESS)` marker (`\s*\(IN PROGRESS\)\s*$`).
fn strip_in_progress(description: &str) -> &str {
    description
        .strip_suffix("(IN PROGRESS)")
        .map_or(description, |d| d.trim_end_matches(super::text::is_py_space))
}

/// `a.py, b.py, c.py (+2 more)` as the list it was rendered from, with a placeholder per file that was
/// only counted. A line that cannot be such a rendering (more than three names, or a count without
/// three names) stays one entry, as the legacy parser kept it, so it renders back unchanged.
fn split_files(files: &str) -> Vec<String> {
    let (names, more) = match files.strip_suffix(" more)").and_then(|s| s.rsplit_once(" (+")) {
        Some((names, count)) => match leading_number(count) {
            Some((n, "")) if n > 0 && n <= MAX_PLACEHOLDERS => (names, n),
            _ => (files, 0),
        },
        None => (files, 0),
    };
    let parts: Vec<&str> = names.split(", ").collect();
    let renders_back = if more > 0 { parts.len() == 3 } else { parts.len() <= 3 };
    if !renders_back {
        return vec![files.to_owned()];
    }
    let mut out: Vec<String> = parts.into_iter().map(str::to_owned).collect();
    out.extend((0..more).map(|_| FILE_PLACEHOLDER.to_owned()));
    out
}

/// The lines after the first line starting with `header`, up to the next `## ` line.
fn section_lines<'a>(all: &'a [&'a str], header: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    all.iter()
        .skip_while(move |l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .copied()
}

/// Pairs with repeated keys merged as a Python dict merges them: the first position, the last value.
fn dict_like(pairs: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (key, value) in pairs {
        if let Some(&i) = index.get(&key) {
            out[i].1 = value;
        } else {
            index.insert(key.clone(), out.len());
            out.push((key, value));
        }
    }
    out
}

/// `- **key:** value`, as the renderer writes metadata.
fn metadata_entry(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("- **")?;
    let (key, value) = rest.split_once(":**")?;
    let value = value.strip_prefix(' ').unwrap_or(value);
    Some((key.to_owned(), value.to_owned()))
}

/// The value after `label` on the first line that has one in `YYYY-MM-DD HH:MM:SS` form, with the bold
/// markup around it removed (`**Started:** 2025-01-15 10:00:00`).
fn timestamp_after(all: &[&str], label: &str) -> Option<String> {
    all.iter().find_map(|line| {
        let (_, rest) = line.split_once(label)?;
        let value = rest.trim_matches(|c: char| c == '*' || super::text::is_py_space(c));
        is_timestamp(value).then(|| value.to_owned())
    })
}

/// `YYYY-MM-DD HH:MM:SS` naming a real time (what `strptime` with that format accepts and `datetime`
/// can hold), so callers can convert it without a failure path.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let layout = b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        });
    if !layout {
        return false;
    }
    let num = |range: std::ops::Range<usize>| s[range].parse::<u32>().unwrap_or(u32::MAX);
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day) && num(11..13) < 24 && num(14..16) < 60 && num(17..19) < 60
}

/// `Wave (\d+)/(\d+)`, searched.
fn wave_ratio(line: &str) -> Option<(i64, i64)> {
    line.match_indices("Wave ").find_map(|(i, m)| {
        let (current, rest) = leading_number(&line[i + m.len()..])?;
        let (total, _) = leading_number(rest.strip_prefix('/')?)?;
        Some((current, total))
    })
}

/// `Wave (\d+)`, searched.
fn wave_number(line: &str) -> Option<i64> {
    line.match_indices("Wave ")
        .find_map(|(i, m)| leading_number(&line[i + m.len()..]).map(|(n, _)| n))
}

/// Whether any line has a `Wave N/M` ratio (for the corruption check).
pub(crate) fn wave_ratio_anywhere(content: &str) -> Option<(i64, i64)> {
    lines(content).find_map(wave_ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lines_follow_the_legacy_pattern() {
        assert_eq!(task_line("- [x] **t1**: Do it"), Some(("t1", "Do it")));
        assert_eq!(task_line("- [ ] ***t1**: x"), Some(("t1", "x")));
        assert_eq!(task_line("- [ ] **t1**:   "), Some(("t1", "")));
        assert_eq!(task_line("- [ ] **t1**:"), None);
        assert_eq!(task_line("- [ ] **t1** : x"), None);
        assert_eq!(task_line("- [ ] **a*b**: x"), None);
        assert_eq!(task_line("- [ ] **a** **b**: x"), Some(("b", "x")));
    }

    #[test]
    fn in_progress_marker_is_stripped_once() {
        assert_eq!(strip_in_progress("work (IN PROGRESS)"), "work");
        assert_eq!(strip_in_progress("a (IN PROGRESS)(IN PROGRESS)"), "a (IN PROGRESS)");
        assert_eq!(strip_in_progress("(IN PROGRESS)"), "");
    }

    #[test]
    fn files_lines_become_lists_that_render_back() {
        assert_eq!(split_files("a.py"), ["a.py"]);
        assert_eq!(split_files("a.py, b.py, c.py"), ["a.py", "b.py", "c.py"]);
        assert_eq!(
            split_files("a.py, b.py, c.py (+2 more)"),
            ["a.py", "b.py", "c.py", FILE_PLACEHOLDER, FILE_PLACEHOLDER]
        );
        // Not a rendering of a list: kept whole.
        assert_eq!(split_files("a, b, c, d"), ["a, b, c, d"]);
        assert_eq!(split_files("a, b (+2 more)"), ["a, b (+2 more)"]);
        assert_eq!(split_files("a, b, c (+0 more)"), ["a", "b", "c (+0 more)"]);
    }

    #[test]
    fn timestamps_are_read_through_the_bold_markup() {
        let all = ["**Started:** 2025-01-15 10:00:00", "Updated: 2025-01-15 11:00:00"];
        assert_eq!(
            timestamp_after(&all, "Started:").as_deref(),
            Some("2025-01-15 10:00:00")
        );
        assert_eq!(
            timestamp_after(&all, "Updated:").as_deref(),
            Some("2025-01-15 11:00:00")
        );
        assert_eq!(timestamp_after(&["Started: soon"], "Started:"), None);
        assert_eq!(timestamp_after(&["Started: 2025-02-29 10:00:00"], "Started:"), None);
        assert!(timestamp_after(&["Started: 2024-02-29 23:59:59"], "Started:").is_some());
        assert_eq!(timestamp_after(&["Started: 0000-01-01 00:00:00"], "Started:"), None);
        assert_eq!(timestamp_after(&["Started: 2025-01-01 24:00:00"], "Started:"), None);
    }

    #[test]
    fn wave_patterns() {
        assert_eq!(wave_ratio("**Status:** Wave 2/4"), Some((2, 4)));
        assert_eq!(wave_ratio("Wave x Wave 3/5"), Some((3, 5)));
        assert_eq!(
            wave_ratio("Wave  2/4"),
            None,
            "exactly one space, as the legacy pattern"
        );
        assert_eq!(wave_number("### Wave 12"), Some(12));
        assert_eq!(metadata_entry("- **k:** v: w"), Some(("k".into(), "v: w".into())));
    }
}
