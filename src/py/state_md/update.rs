//! `StateManager.update()` and `initialize()` without Python task objects: the caller's task dicts are
//! read by `BlackBox5`'s conventions straight into the core's model, and the core renders the file.
//!
//! The conventions are those of `BlackBox5`'s Python API (keys of `dict`s, Python truthiness), so they
//! are read here, with Python's semantics:
//! * id: `task_id`, else `agent_id`, else `unknown` (completed and current tasks) or
//!   `wave{n}_task{len(tasks) + 1}` (pending tasks); a repeated id replaces the earlier task in place;
//! * description: the first truthy of `description` and `task`, else `prompt` (default `Unknown`) cut
//!   to 100 characters;
//! * a current-wave task's `result`: none or empty means in progress, `success` completed, `error`
//!   failed, anything else in progress; a completed one without its own `commit_hash` gets the wave's;
//! * files: the result's `files_modified`, else its `files_created`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyInt, PySlice, PyString};
use pyo3::{Py, intern};

use super::PyRenderedStateMd;
use super::values::{self, Draft};
use crate::state_md::{self, Status, Task, Workflow};

/// Renders the file `update()` (or, with only pending waves, `initialize()`) writes.
#[pyfunction]
#[pyo3(signature = (
    *, workflow_id, workflow_name, current_wave, total_waves, completed, current, pending,
    first_pending_wave, commit_hash, started, updated, notes, metadata
))]
#[allow(clippy::too_many_arguments)] // the legacy `update` signature, by keyword
pub(crate) fn _render_update(
    py: Python<'_>,
    workflow_id: &Bound<'_, PyAny>,
    workflow_name: &Bound<'_, PyAny>,
    current_wave: &Bound<'_, PyAny>,
    total_waves: &Bound<'_, PyAny>,
    completed: &Bound<'_, PyAny>,
    current: &Bound<'_, PyAny>,
    pending: &Bound<'_, PyAny>,
    first_pending_wave: i64,
    commit_hash: &Bound<'_, PyAny>,
    started: &str,
    updated: &str,
    notes: &Bound<'_, PyAny>,
    metadata: &Bound<'_, PyAny>,
) -> PyResult<PyRenderedStateMd> {
    let mut tasks = TaskList::new(py);
    for d in completed.try_iter()? {
        tasks.add_completed(&d?)?;
    }
    for d in current.try_iter()? {
        tasks.add_current(&d?, current_wave, commit_hash)?;
    }
    for (i, wave) in pending.try_iter()?.enumerate() {
        let number = first_pending_wave
            .checked_add(i as i64)
            .ok_or_else(|| PyValueError::new_err("wave number out of range"))?;
        for d in wave?.try_iter()? {
            tasks.add_pending(&d?, number)?;
        }
    }
    let TaskList { drafts, duplicates, .. } = tasks;
    let mut w = Workflow {
        id: values::text(workflow_id)?,
        name: values::text(workflow_name)?,
        started: started.to_owned(),
        updated: updated.to_owned(),
        notes: values::texts(notes)?,
        metadata: values::items(metadata)?,
        ..Workflow::default()
    };
    values::set_waves(&mut w, current_wave, total_waves)?;
    w.tasks = values::rank_waves(drafts)?;
    let task_count = w.tasks.len();
    let text = py.detach(|| state_md::render(&w)).map_err(values::render_error)?;
    Ok(PyRenderedStateMd::new(py, &text, task_count, duplicates))
}

/// The tasks in the order of a Python `dict` keyed by id.
struct TaskList<'py> {
    py: Python<'py>,
    drafts: Vec<Draft<'py>>,
    /// Id -> slot in `drafts`: a Python `dict`, so ids compare as the legacy `tasks` dict compared
    /// them (`1`, `1.0` and `True` are one id; `1` and `"1"` are two).
    slots: Bound<'py, PyDict>,
    duplicates: Vec<String>,
}

impl<'py> TaskList<'py> {
    fn new(py: Python<'py>) -> Self {
        Self {
            py,
            drafts: Vec::new(),
            slots: PyDict::new(py),
            duplicates: Vec::new(),
        }
    }

    fn add_completed(&mut self, d: &Bound<'py, PyAny>) -> PyResult<()> {
        let py = self.py;
        let id = get(d, intern!(py, "task_id"))?.map_or_else(|| get(d, intern!(py, "agent_id")), |v| Ok(Some(v)))?;
        let result = get(d, intern!(py, "result"))?;
        let wave = get(d, intern!(py, "wave_id"))?.unwrap_or_else(|| zero(py));
        let task = Task {
            description: description(d)?,
            status: Status::Completed,
            files: files_of(result.as_ref())?,
            commit: detail_of(d, intern!(py, "commit_hash"))?,
            error: detail_of(d, intern!(py, "error"))?,
            ..Task::default()
        };
        self.insert(id.unwrap_or_else(|| unknown(py)), task, wave)
    }

    fn add_current(
        &mut self,
        d: &Bound<'py, PyAny>,
        wave: &Bound<'py, PyAny>,
        commit_hash: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = self.py;
        let id = get(d, intern!(py, "task_id"))?.map_or_else(|| get(d, intern!(py, "agent_id")), |v| Ok(Some(v)))?;
        let result = get(d, intern!(py, "result"))?.filter(|r| !r.is_none());
        let result = match result {
            Some(r) if r.is_truthy()? => Some(r),
            _ => None,
        };
        let status = match &result {
            Some(r) if truthy(get(r, intern!(py, "success"))?)? => Status::Completed,
            Some(r) if truthy(get(r, intern!(py, "error"))?)? => Status::Failed,
            _ => Status::InProgress,
        };
        let mut commit = detail_of(d, intern!(py, "commit_hash"))?;
        if status == Status::Completed && commit.is_none() {
            commit = values::detail(commit_hash)?; // the wave's commit, for tasks that name none
        }
        let mut error = detail_of(d, intern!(py, "error"))?;
        if error.is_none()
            && let Some(r) = &result
        {
            error = match get(r, intern!(py, "error"))? {
                Some(e) => values::detail(&e)?,
                None => None,
            };
        }
        let task = Task {
            description: description(d)?,
            status,
            files: files_of(result.as_ref())?,
            commit,
            error,
            ..Task::default()
        };
        self.insert(id.unwrap_or_else(|| unknown(py)), task, wave.clone())
    }

    fn add_pending(&mut self, d: &Bound<'py, PyAny>, wave: i64) -> PyResult<()> {
        let py = self.py;
        let id =
            match get(d, intern!(py, "task_id"))?.map_or_else(|| get(d, intern!(py, "agent_id")), |v| Ok(Some(v)))? {
                Some(id) => id,
                None => PyString::new(py, &format!("wave{wave}_task{}", self.drafts.len() + 1)).into_any(),
            };
        let task = Task {
            description: description(d)?,
            status: Status::Pending,
            ..Task::default()
        };
        self.insert(id, task, PyInt::new(py, wave).into_any())
    }

    /// `tasks[id] = task`: a new id goes last, a repeated one replaces the earlier task in its place.
    fn insert(&mut self, id: Bound<'py, PyAny>, mut task: Task, wave: Bound<'py, PyAny>) -> PyResult<()> {
        task.id = values::text(&id)?;
        task.wave = values::exact_int(&wave).unwrap_or(0);
        let slot = self.slots.get_item(&id)?.map(|i| i.extract::<usize>()).transpose()?;
        if slot.is_none() {
            self.slots.set_item(&id, self.drafts.len())?;
        }
        let draft = Draft { task, wave };
        match slot {
            Some(i) => {
                self.duplicates.push(draft.task.id.clone());
                self.drafts[i] = draft;
            }
            None => self.drafts.push(draft),
        }
        Ok(())
    }
}

/// `d.get(key)`, telling a missing key (`None`) from a key holding `None`.
fn get<'py>(d: &Bound<'py, PyAny>, key: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyAny>>> {
    static MISSING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if let Ok(dict) = d.cast_exact::<PyDict>() {
        return dict.get_item(key);
    }
    let missing = MISSING.get_or_try_init(d.py(), || PyResult::Ok(d.py().get_type::<PyAny>().call0()?.unbind()))?;
    let value = d.call_method1(intern!(d.py(), "get"), (key, missing))?;
    Ok((!value.is(missing)).then_some(value))
}

fn truthy(value: Option<Bound<'_, PyAny>>) -> PyResult<bool> {
    value.map_or(Ok(false), |v| v.is_truthy())
}

/// `f"{d.get(key)}"` if that is truthy.
fn detail_of(d: &Bound<'_, PyAny>, key: &Bound<'_, PyString>) -> PyResult<Option<String>> {
    get(d, key)?.map_or(Ok(None), |v| values::detail(&v))
}

/// `d.get('description') or d.get('task') or d.get('prompt', 'Unknown')[:100]`.
fn description(d: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = d.py();
    for key in [intern!(py, "description"), intern!(py, "task")] {
        if let Some(value) = get(d, key)?
            && value.is_truthy()?
        {
            return values::text(&value);
        }
    }
    let Some(prompt) = get(d, intern!(py, "prompt"))? else {
        return Ok("Unknown".to_owned());
    };
    if let Ok(s) = prompt.cast_exact::<PyString>() {
        let s = s.to_str()?;
        return Ok(s.char_indices().nth(100).map_or(s, |(i, _)| &s[..i]).to_owned());
    }
    values::text(&prompt.get_item(PySlice::new(py, 0, 100, 1))?)
}

/// `result.get('files_modified', result.get('files_created', []))` for a truthy result.
fn files_of(result: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    let Some(result) = result.filter(|r| !r.is_none()) else {
        return Ok(Vec::new());
    };
    if !result.is_truthy()? {
        return Ok(Vec::new());
    }
    let py = result.py();
    match get(result, intern!(py, "files_modified"))? {
        Some(files) => values::files(&files),
        None => get(result, intern!(py, "files_created"))?.map_or(Ok(Vec::new()), |f| values::files(&f)),
    }
}

fn zero(py: Python<'_>) -> Bound<'_, PyAny> {
    PyInt::new(py, 0).into_any()
}

fn unknown(py: Python<'_>) -> Bound<'_, PyAny> {
    intern!(py, "unknown").clone().into_any()
}
