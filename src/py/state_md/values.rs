//! Python values as the `STATE.md` renderer needs them, with the legacy code's semantics: every field
//! is shown as `f"{value}"` (Python's `format()`), truthiness decides whether a detail line is written,
//! the `Files` line joins the first three entries as `", ".join` does, and waves are grouped and
//! ordered as a Python `dict` and `sorted()` would. Values of the common kinds (exact `str` and `int`)
//! take a shortcut that gives the same text.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PySlice, PyString};
use pyo3::{Py, intern};

use crate::state_md::{FILE_PLACEHOLDER, Progress, RenderError, Status, StatusLine, Task, Workflow};

/// Integers up to 2^53 convert to `f64` exactly, so the core's `current / total` equals Python's true
/// division for them; other numbers get Python's own arithmetic (see [`status_line`]).
const EXACT_FLOAT_INT: i64 = 1 << 53;

static FORMAT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static INT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SORTED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `f"{value}"`.
pub(crate) fn text(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = value.cast_exact::<PyString>() {
        return Ok(s.to_str()?.to_owned());
    }
    if value.is_exact_instance_of::<PyInt>() {
        return Ok(value.str()?.to_str()?.to_owned());
    }
    let format = FORMAT.import(value.py(), "builtins", "format")?;
    Ok(format.call1((value,))?.cast_into::<PyString>()?.to_str()?.to_owned())
}

/// `f"{value}"` if `value` is truthy (a detail line is written), else `None`.
pub(crate) fn detail(value: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if value.is_none() || !value.is_truthy()? {
        return Ok(None);
    }
    text(value).map(Some)
}

/// An exact `int` (not `bool`, whose text is `True`) that fits `i64`.
pub(crate) fn exact_int(value: &Bound<'_, PyAny>) -> Option<i64> {
    if value.is_exact_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>() {
        value.extract().ok()
    } else {
        None
    }
}

/// The section a status puts its task in: by value for a `str` (what `==` compares), by Python's `==`
/// for anything else.
fn status(value: &Bound<'_, PyAny>) -> PyResult<Status> {
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Status::from_name(s.to_str()?));
    }
    for known in [Status::Completed, Status::InProgress, Status::Pending, Status::Failed] {
        if value.eq(known.name())? {
            return Ok(known);
        }
    }
    Ok(Status::Other(String::new()))
}

/// `files[:3]` joined as `", ".join` joins (each entry must be a `str`; a subclass counts as its
/// value, not its `format()`), padded with placeholders to `len(files)`.
pub(crate) fn files(value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if value.is_none() || !value.is_truthy()? {
        return Ok(Vec::new());
    }
    let total = value.len()?;
    let head: Vec<Bound<'_, PyAny>> = match value.cast_exact::<PyList>() {
        Ok(list) => list.iter().take(3).collect(),
        Err(_) => value
            .get_item(PySlice::new(value.py(), 0, 3, 1))?
            .try_iter()?
            .collect::<PyResult<_>>()?,
    };
    let mut out = Vec::with_capacity(total);
    for (i, item) in head.into_iter().enumerate() {
        let Ok(s) = item.cast::<PyString>() else {
            let kind = item.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "sequence item {i}: expected str instance, {kind} found"
            )));
        };
        out.push(s.to_str()?.to_owned());
    }
    out.resize(total.max(out.len()), FILE_PLACEHOLDER.to_owned());
    Ok(out)
}

/// A task and the Python value of its wave (ranked later, once the whole section is known).
pub(crate) struct Draft<'py> {
    pub(crate) task: Task,
    pub(crate) wave: Bound<'py, PyAny>,
}

/// A `TaskState` (anything with its attributes).
pub(crate) fn task<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Draft<'py>> {
    let py = obj.py();
    let wave = obj.getattr(intern!(py, "wave_id"))?;
    Ok(Draft {
        task: Task {
            id: text(&obj.getattr(intern!(py, "task_id"))?)?,
            description: text(&obj.getattr(intern!(py, "description"))?)?,
            status: status(&obj.getattr(intern!(py, "status"))?)?,
            wave: exact_int(&wave).unwrap_or(0),
            wave_label: None,
            files: files(&obj.getattr(intern!(py, "files_modified"))?)?,
            commit: detail(&obj.getattr(intern!(py, "commit_hash"))?)?,
            error: detail(&obj.getattr(intern!(py, "error"))?)?,
        },
        wave,
    })
}

/// A `WorkflowState` (anything with its attributes), timestamps already formatted.
pub(crate) fn workflow(state: &Bound<'_, PyAny>, started: &str, updated: &str) -> PyResult<Workflow> {
    let py = state.py();
    let current = state.getattr(intern!(py, "current_wave"))?;
    let total = state.getattr(intern!(py, "total_waves"))?;
    let tasks = state.getattr(intern!(py, "tasks"))?;
    let values = match tasks.cast_exact::<PyDict>() {
        Ok(dict) => dict.values().into_any(),
        Err(_) => tasks.call_method0(intern!(py, "values"))?,
    };
    let mut drafts = Vec::with_capacity(values.len().unwrap_or(0));
    for task_obj in values.try_iter()? {
        drafts.push(task(&task_obj?)?);
    }
    let mut w = Workflow {
        id: text(&state.getattr(intern!(py, "workflow_id"))?)?,
        name: text(&state.getattr(intern!(py, "workflow_name"))?)?,
        started: started.to_owned(),
        updated: updated.to_owned(),
        notes: texts(&state.getattr(intern!(py, "notes"))?)?,
        metadata: items(&state.getattr(intern!(py, "metadata"))?)?,
        ..Workflow::default()
    };
    set_waves(&mut w, &current, &total)?;
    w.tasks = rank_waves(drafts)?;
    Ok(w)
}

/// `Wave {current}/{total}`: exact small integers as they are, anything else as a [`StatusLine`].
pub(crate) fn set_waves(w: &mut Workflow, current: &Bound<'_, PyAny>, total: &Bound<'_, PyAny>) -> PyResult<()> {
    match (exact_int(current), exact_int(total)) {
        (Some(c), Some(t)) if c.abs() <= EXACT_FLOAT_INT && t.abs() <= EXACT_FLOAT_INT => {
            w.current_wave = c;
            w.total_waves = t;
        }
        _ => w.status_line = Some(status_line(current, total)?),
    }
    Ok(())
}

/// `if values: [f"{v}" for v in values]`.
pub(crate) fn texts(values: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if values.is_none() || !values.is_truthy()? {
        return Ok(Vec::new());
    }
    values.try_iter()?.map(|v| text(&v?)).collect()
}

/// `if mapping: [(f"{k}", f"{v}") for k, v in mapping.items()]`.
pub(crate) fn items(mapping: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    if mapping.is_none() || !mapping.is_truthy()? {
        return Ok(Vec::new());
    }
    if let Ok(dict) = mapping.cast_exact::<PyDict>() {
        return dict.iter().map(|(k, v)| Ok((text(&k)?, text(&v)?))).collect();
    }
    let mut out = Vec::new();
    for pair in mapping.call_method0(intern!(mapping.py(), "items"))?.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
        out.push((text(&k)?, text(&v)?));
    }
    Ok(out)
}

/// The status line for wave numbers that are not small exact integers, with Python's own comparison
/// and arithmetic (so a `Fraction` or `Decimal` draws the bar its exact arithmetic gives): the legacy
/// `if total > 0: progress = current / total; int(progress * 20); int(progress * 100)`.
pub(crate) fn status_line(current: &Bound<'_, PyAny>, total: &Bound<'_, PyAny>) -> PyResult<StatusLine> {
    let (current_text, total_text) = (text(current)?, text(total)?);
    let progress = if total.gt(0)? {
        let int = INT.import(current.py(), "builtins", "int")?;
        let fraction = current.div(total)?;
        let cells = int.call1((fraction.mul(Progress::CELLS)?,))?;
        let percent = int.call1((fraction.mul(100)?,))?;
        match (cells.extract::<i64>(), percent.extract::<i64>()) {
            (Ok(filled), Ok(percent)) => Some(Progress { filled, percent }),
            _ => {
                return Err(render_error(RenderError {
                    current: current_text,
                    total: total_text,
                }));
            }
        }
    } else {
        None
    };
    Ok(StatusLine {
        current: current_text,
        total: total_text,
        progress,
    })
}

/// The legacy renderer grouped completed and pending tasks by wave with a `dict` and ordered the groups
/// with `sorted()`. Waves that are exact integers are ordered here; a section with any other wave value
/// is grouped and sorted by Python (raising what the legacy code raised for values it cannot compare),
/// and each task gets its wave's rank and text.
pub(crate) fn rank_waves(mut drafts: Vec<Draft<'_>>) -> PyResult<Vec<Task>> {
    for section in [Status::Completed, Status::Pending] {
        let members: Vec<usize> = (0..drafts.len())
            .filter(|&i| drafts[i].task.status == section)
            .collect();
        if members.iter().all(|&i| exact_int(&drafts[i].wave).is_some()) {
            continue;
        }
        let py = drafts[members[0]].wave.py();
        // Python dict semantics: 1, 1.0 and True are one wave, shown as the first of them.
        let groups = PyDict::new(py);
        for &i in &members {
            let wave = &drafts[i].wave;
            if !groups.contains(wave)? {
                groups.set_item(wave, wave)?;
            }
        }
        let ordered = SORTED.import(py, "builtins", "sorted")?.call1((&groups,))?;
        let ranks = PyDict::new(py);
        let mut labels = Vec::new();
        for (rank, key) in ordered.try_iter()?.enumerate() {
            // The dict's keys are the first value of each wave: its text names the wave.
            let key = key?;
            labels.push(text(&key)?);
            ranks.set_item(key, rank)?;
        }
        for &i in &members {
            let rank: usize = ranks
                .get_item(&drafts[i].wave)?
                .ok_or_else(|| PyValueError::new_err("a wave value changed while the file was rendered"))?
                .extract()?;
            drafts[i].task.wave = rank as i64;
            drafts[i].task.wave_label = Some(labels[rank].clone());
        }
    }
    Ok(drafts.into_iter().map(|d| d.task).collect())
}

/// A `ValueError` naming the absurd progress bar.
pub(crate) fn render_error(e: RenderError) -> PyErr {
    PyValueError::new_err(e.to_string())
}
