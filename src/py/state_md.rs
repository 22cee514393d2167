//! The `STATE.md` renderer and parser for the Python `WorkflowState` / `TaskState` dataclasses.
//!
//! The dataclasses are ordinary Python objects whose fields may hold anything (the legacy code formats
//! each with an f-string). The fast path here reads the common shapes (`str`, `int`, lists of `str`,
//! dicts); for anything else it returns `None` and the Python reference renderer takes over, so the
//! output is the legacy output in every case.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::state_md::{self, Task, Workflow};

/// Integers up to 2^53 convert to `f64` exactly, so `current / total` here equals Python's true
/// division; beyond that the Python renderer is used.
const EXACT_FLOAT_INT: i64 = 1 << 53;

/// The markdown for a `WorkflowState`, or `None` if a field needs the Python renderer.
#[pyfunction]
pub(crate) fn _render_workflow(
    py: Python<'_>,
    state: &Bound<'_, PyAny>,
    started: &str,
    updated: &str,
) -> PyResult<Option<String>> {
    let Some(w) = extract_workflow(state, started, updated)? else {
        return Ok(None);
    };
    Ok(py.detach(|| state_md::render(&w)).ok())
}

/// `(name, id, current_wave, total_waves, started, updated, tasks, notes, metadata)` parsed from
/// `STATE.md` content, where each task is `(id, description, status, wave, files, commit, error)`
/// and the timestamps are `YYYY-MM-DD HH:MM:SS` text or `None`. With `tasks=False` the task list is
/// empty (callers that only carry the header, notes and metadata over).
#[pyfunction]
#[pyo3(signature = (content, *, tasks=true))]
pub(crate) fn _parse_workflow<'py>(py: Python<'py>, content: &str, tasks: bool) -> PyResult<Bound<'py, PyTuple>> {
    let parsed = py.detach(|| state_md::parse_with(content, tasks));
    let w = parsed.workflow;
    let task_list = PyList::empty(py);
    if tasks {
        for t in w.tasks {
            let item = (t.id, t.description, t.status, t.wave, t.files, t.commit, t.error);
            task_list.append(item)?;
        }
    }
    let metadata = PyDict::new(py);
    for (key, value) in w.metadata {
        metadata.set_item(key, value)?;
    }
    (
        w.name,
        w.id,
        w.current_wave,
        w.total_waves,
        parsed.started,
        parsed.updated,
        task_list,
        w.notes,
        metadata,
    )
        .into_pyobject(py)
}

/// `len(re.findall(r'^- \[[^x~ ]\]', content, re.MULTILINE))`, without a regex pass in Python.
#[pyfunction]
pub(crate) fn _workflow_bad_checkboxes(py: Python<'_>, content: &str) -> usize {
    py.detach(|| state_md::bad_checkbox_lines(content))
}

/// Why `content` cannot be a `STATE.md` at all (empty, or nothing a parser could recover), or `None`.
#[pyfunction]
pub(crate) fn _workflow_corruption(content: &str) -> Option<&'static str> {
    state_md::corruption(content)
}

/// Parse, append `note`, stamp `updated` (and `now` as the start time if the file has none), render:
/// `add_note` without building Python objects. `None` if the result would need the Python renderer.
#[pyfunction]
pub(crate) fn _workflow_add_note(
    py: Python<'_>,
    content: &str,
    note: &str,
    updated: &str,
    now: &str,
) -> Option<String> {
    py.detach(|| {
        let parsed = state_md::parse(content);
        let mut w = parsed.workflow;
        if w.current_wave.abs() > EXACT_FLOAT_INT || w.total_waves.abs() > EXACT_FLOAT_INT {
            return None;
        }
        w.started = parsed.started.unwrap_or_else(|| now.to_owned());
        updated.clone_into(&mut w.updated);
        w.notes.push(note.to_owned());
        state_md::render(&w).ok()
    })
}

/// Reads a `WorkflowState`; `None` if any field needs the Python renderer.
fn extract_workflow(state: &Bound<'_, PyAny>, started: &str, updated: &str) -> PyResult<Option<Workflow>> {
    macro_rules! some {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    let mut w = Workflow {
        name: some!(text(&state.getattr(intern!(state.py(), "workflow_name"))?)?),
        id: some!(text(&state.getattr(intern!(state.py(), "workflow_id"))?)?),
        current_wave: some!(
            exact_int(&state.getattr(intern!(state.py(), "current_wave"))?).filter(|v| v.abs() <= EXACT_FLOAT_INT)
        ),
        total_waves: some!(
            exact_int(&state.getattr(intern!(state.py(), "total_waves"))?).filter(|v| v.abs() <= EXACT_FLOAT_INT)
        ),
        started: started.to_owned(),
        updated: updated.to_owned(),
        ..Workflow::default()
    };
    let tasks = state.getattr(intern!(state.py(), "tasks"))?;
    let tasks = some!(tasks.cast::<PyDict>().ok());
    w.tasks.reserve(tasks.len());
    for task in tasks.values() {
        w.tasks.push(some!(extract_task(&task)?));
    }
    let notes = state.getattr(intern!(state.py(), "notes"))?;
    if notes.is_truthy()? {
        for note in notes.try_iter()? {
            w.notes.push(some!(text(&note?)?));
        }
    }
    let metadata = state.getattr(intern!(state.py(), "metadata"))?;
    if metadata.is_truthy()? {
        let metadata = some!(metadata.cast::<PyDict>().ok());
        for (key, value) in metadata.iter() {
            w.metadata.push((some!(text(&key)?), some!(text(&value)?)));
        }
    }
    Ok(Some(w))
}

fn extract_task(task: &Bound<'_, PyAny>) -> PyResult<Option<Task>> {
    let status = task.getattr(intern!(task.py(), "status"))?;
    // Only a str can equal "completed" etc.; anything else belongs to no section, like "".
    let status = match status.cast::<PyString>() {
        Ok(s) if status.is_exact_instance_of::<PyString>() => s.to_str()?.to_owned(),
        Ok(_) => return Ok(None),
        Err(_) => String::new(),
    };
    let Some(wave) = exact_int(&task.getattr(intern!(task.py(), "wave_id"))?) else {
        return Ok(None);
    };
    let files_obj = task.getattr(intern!(task.py(), "files_modified"))?;
    let mut files = Vec::new();
    if files_obj.is_truthy()? {
        let Ok(list) = files_obj.cast::<PyList>() else {
            return Ok(None);
        };
        for item in list.iter() {
            match item.cast::<PyString>() {
                Ok(s) if item.is_exact_instance_of::<PyString>() => files.push(s.to_str()?.to_owned()),
                _ => return Ok(None),
            }
        }
    }
    let mut details = [None, None];
    let py = task.py();
    for (slot, name) in details
        .iter_mut()
        .zip([intern!(py, "commit_hash"), intern!(py, "error")])
    {
        match detail(&task.getattr(name)?)? {
            Detail::Absent => {}
            Detail::Text(t) => *slot = Some(t),
            Detail::Unsupported => return Ok(None),
        }
    }
    let [commit, error] = details;
    let (Some(id), Some(description)) = (
        text(&task.getattr(intern!(task.py(), "task_id"))?)?,
        text(&task.getattr(intern!(task.py(), "description"))?)?,
    ) else {
        return Ok(None);
    };
    Ok(Some(Task {
        id,
        description,
        status,
        wave,
        files,
        commit,
        error,
    }))
}

/// `f"{value}"` for the types the fast path handles: `str` and `int` exactly (not subclasses, whose
/// `__format__` may differ). `None` otherwise, or for text that is not valid UTF-8 (lone surrogates).
fn text(value: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if value.is_exact_instance_of::<PyString>() {
        let s = value.cast::<PyString>()?;
        return Ok(s.to_str().ok().map(str::to_owned));
    }
    if value.is_exact_instance_of::<PyInt>() {
        return Ok(Some(value.str()?.to_str()?.to_owned()));
    }
    Ok(None)
}

/// An optional detail line (`if self.commit_hash:` in the legacy code).
enum Detail {
    /// Falsy: no line.
    Absent,
    /// Truthy, with this text.
    Text(String),
    /// Needs the Python renderer (an unusual type, or a truthy value that formats as an empty string,
    /// which the core would take for "no value").
    Unsupported,
}

fn detail(value: &Bound<'_, PyAny>) -> PyResult<Detail> {
    if !value.is_truthy()? {
        return Ok(Detail::Absent);
    }
    Ok(match text(value)? {
        Some(t) if !t.is_empty() => Detail::Text(t),
        _ => Detail::Unsupported,
    })
}

/// An exact `int` (not `bool`, whose text is `True`) that fits `i64`.
fn exact_int(value: &Bound<'_, PyAny>) -> Option<i64> {
    if value.is_exact_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>() {
        value.extract().ok()
    } else {
        None
    }
}
