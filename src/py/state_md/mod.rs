//! `BlackBox5`'s `STATE.md` for Python. The core renders and parses; this layer converts: the
//! `WorkflowState`/`TaskState` dataclasses (whose fields may hold values of any kind) into the core's
//! model with Python's semantics (`values`), and the parse result into a typed record whose tasks are
//! built as the caller's dataclass, field by field.

mod values;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use pyo3::{Py, intern};

use crate::state_md::{self, Status, Task};

/// `STATE.md` content as parsed: the header, notes and metadata, and (if asked for) the tasks.
#[pyclass(name = "ParsedStateMd", module = "ferrolock._ferrolock", frozen, get_all)]
pub(crate) struct PyParsedStateMd {
    workflow_id: String,
    workflow_name: String,
    current_wave: i64,
    total_waves: i64,
    started: Option<String>,
    updated: Option<String>,
    tasks: Py<PyDict>,
    notes: Py<PyList>,
    metadata: Py<PyDict>,
}

/// Parse `STATE.md` content; with `task_class`, build the tasks as instances of it.
#[pyfunction]
#[pyo3(signature = (content, *, task_class=None))]
pub(crate) fn _parse_state_md(
    py: Python<'_>,
    content: &str,
    task_class: Option<Bound<'_, PyType>>,
) -> PyResult<PyParsedStateMd> {
    let with_tasks = task_class.is_some();
    let parsed = py.detach(|| state_md::parse_with(content, with_tasks));
    let w = parsed.workflow;
    let tasks = PyDict::new(py);
    if let Some(class) = task_class {
        let factory = TaskFactory::new(class)?;
        for task in w.tasks {
            let id = PyString::new(py, &task.id);
            tasks.set_item(&id, factory.build(id.clone(), task)?)?;
        }
    }
    let metadata = PyDict::new(py);
    for (key, value) in w.metadata {
        metadata.set_item(key, value)?;
    }
    Ok(PyParsedStateMd {
        workflow_id: w.id,
        workflow_name: w.name,
        current_wave: w.current_wave,
        total_waves: w.total_waves,
        started: parsed.started,
        updated: parsed.updated,
        tasks: tasks.unbind(),
        notes: PyList::new(py, w.notes)?.unbind(),
        metadata: metadata.unbind(),
    })
}

/// The `STATE.md` text for a `WorkflowState` (timestamps already formatted).
#[pyfunction]
pub(crate) fn _render_state_md(
    py: Python<'_>,
    state: &Bound<'_, PyAny>,
    started: &str,
    updated: &str,
) -> PyResult<String> {
    let w = values::workflow(state, started, updated)?;
    py.detach(|| state_md::render(&w)).map_err(values::render_error)
}

/// A `TaskState`'s lines.
#[pyfunction]
pub(crate) fn _render_task(task: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(state_md::render_task(&values::task(task)?.task))
}

/// `len(re.findall(r'^- \[[^x~ ]\]', content, re.MULTILINE))`, without a regex pass in Python.
#[pyfunction]
pub(crate) fn _state_md_bad_checkboxes(py: Python<'_>, content: &str) -> usize {
    py.detach(|| state_md::bad_checkbox_lines(content))
}

/// Why `content` cannot be a `STATE.md` at all (empty, or nothing a parser could recover), or `None`.
#[pyfunction]
pub(crate) fn _state_md_corruption(content: &str) -> Option<&'static str> {
    state_md::corruption(content)
}

/// Parse, append `note` (shown as `f"{note}"`), stamp `updated` (and `now` as the start time if the
/// file has none), render: `add_note` without building Python objects.
#[pyfunction]
pub(crate) fn _state_md_add_note(
    py: Python<'_>,
    content: &str,
    note: &Bound<'_, PyAny>,
    updated: &str,
    now: &str,
) -> PyResult<String> {
    let note = values::text(note)?;
    py.detach(|| {
        let parsed = state_md::parse(content);
        let mut w = parsed.workflow;
        w.started = parsed.started.unwrap_or_else(|| now.to_owned());
        updated.clone_into(&mut w.updated);
        w.notes.push(note);
        state_md::render(&w)
    })
    .map_err(values::render_error)
}

/// Builds the caller's task dataclass for parsed tasks. A dataclass with exactly the legacy fields
/// and no `__post_init__` gets its fields set by name (what its generated `__init__` does, without
/// the call); any other class is called with keyword arguments.
struct TaskFactory<'py> {
    class: Bound<'py, PyType>,
    /// `object.__new__`, when fields are set directly.
    new: Option<Bound<'py, PyAny>>,
    /// One shared string per known status.
    statuses: [Bound<'py, PyString>; 4],
}

/// The legacy `TaskState` fields.
const TASK_FIELDS: [&str; 7] = [
    "task_id",
    "description",
    "status",
    "wave_id",
    "files_modified",
    "commit_hash",
    "error",
];

impl<'py> TaskFactory<'py> {
    fn new(class: Bound<'py, PyType>) -> PyResult<Self> {
        let py = class.py();
        let plain_dataclass = match class.getattr(intern!(py, "__dataclass_fields__")) {
            Ok(fields) => {
                let fields = fields.cast_into::<PyDict>()?;
                fields.len() == TASK_FIELDS.len()
                    && TASK_FIELDS.iter().all(|f| fields.contains(f).unwrap_or(false))
                    && !class.hasattr(intern!(py, "__post_init__"))?
            }
            Err(_) => false,
        };
        let new = if plain_dataclass {
            Some(py.get_type::<PyAny>().getattr(intern!(py, "__new__"))?)
        } else {
            None
        };
        let statuses = [Status::Pending, Status::InProgress, Status::Completed, Status::Failed]
            .map(|s| PyString::intern(py, s.name()));
        Ok(Self { class, new, statuses })
    }

    fn build(&self, id: Bound<'py, PyString>, task: Task) -> PyResult<Bound<'py, PyAny>> {
        let py = self.class.py();
        let status = match &task.status {
            Status::Pending => self.statuses[0].clone(),
            Status::InProgress => self.statuses[1].clone(),
            Status::Completed => self.statuses[2].clone(),
            Status::Failed => self.statuses[3].clone(),
            Status::Other(name) => PyString::new(py, name),
        };
        let values: [Bound<'py, PyAny>; 7] = [
            id.into_any(),
            PyString::new(py, &task.description).into_any(),
            status.into_any(),
            task.wave.into_pyobject(py)?.into_any(),
            PyList::new(py, task.files)?.into_any(),
            task.commit.into_pyobject(py)?.into_any(),
            task.error.into_pyobject(py)?.into_any(),
        ];
        if let Some(new) = &self.new {
            let obj = new.call1((&self.class,))?;
            for (name, value) in TASK_FIELDS.iter().zip(values) {
                obj.setattr(PyString::intern(py, name), value)?;
            }
            return Ok(obj);
        }
        let kwargs = PyDict::new(py);
        for (name, value) in TASK_FIELDS.iter().zip(values) {
            kwargs.set_item(name, value)?;
        }
        self.class.call((), Some(&kwargs))
    }
}
