//! `BlackBox5`'s `STATE.md` for Python. The core renders and parses; this layer converts: the
//! `WorkflowState`/`TaskState` dataclasses (whose fields may hold values of any kind) into the core's
//! model with Python's semantics (`values`), and the parse result into a typed record whose tasks are
//! built as the caller's dataclass, field by field.

mod update;
mod values;

pub(crate) use update::_render_update;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyType};
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
    task_count: usize,
    tasks: Py<PyDict>,
    notes: Py<PyList>,
    metadata: Py<PyDict>,
}

/// `STATE.md` content as Python hands it over: text, or the file's bytes (which must be UTF-8).
pub(crate) enum Content<'py> {
    Text(Bound<'py, PyString>),
    Bytes(Bound<'py, PyBytes>),
}

impl<'py> FromPyObject<'_, 'py> for Content<'py> {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(text) = obj.cast::<PyString>() {
            return Ok(Self::Text(text.to_owned()));
        }
        Ok(Self::Bytes(obj.cast::<PyBytes>()?.to_owned()))
    }
}

impl Content<'_> {
    /// The text; bytes that are not UTF-8 raise `ValueError` with the reason.
    fn text(&self) -> PyResult<&str> {
        match self {
            Self::Text(text) => text.to_str(),
            Self::Bytes(bytes) => std::str::from_utf8(bytes.as_bytes()).map_err(|_| {
                let reason = state_md::decode(bytes.as_bytes()).err().unwrap_or_default();
                PyValueError::new_err(format!("STATE.md content is {reason}"))
            }),
        }
    }
}

/// A rendered `STATE.md`: its bytes, and what the legacy validation says about them.
#[pyclass(name = "RenderedStateMd", module = "ferrolock._ferrolock", frozen, get_all)]
pub(crate) struct PyRenderedStateMd {
    data: Py<PyBytes>,
    task_count: usize,
    /// Ids that appeared more than once (the later task replaced the earlier), as shown in the file.
    duplicates: Vec<String>,
    warnings: Vec<String>,
}

impl PyRenderedStateMd {
    pub(crate) fn new(py: Python<'_>, text: &str, task_count: usize, duplicates: Vec<String>) -> Self {
        Self {
            data: PyBytes::new(py, text.as_bytes()).unbind(),
            task_count,
            duplicates,
            warnings: state_md::validate(text),
        }
    }
}

/// Parse `STATE.md` content (the task lines only if `tasks`); with `task_class`, build the tasks as
/// instances of it.
#[pyfunction]
#[pyo3(signature = (content, *, tasks=true, task_class=None))]
pub(crate) fn _parse_state_md(
    py: Python<'_>,
    content: Content<'_>,
    tasks: bool,
    task_class: Option<Bound<'_, PyType>>,
) -> PyResult<PyParsedStateMd> {
    let content = content.text()?;
    let parsed = py.detach(|| state_md::parse_with(content, tasks));
    let w = parsed.workflow;
    let task_count = w.tasks.len();
    let built = PyDict::new(py);
    if let Some(class) = task_class {
        let factory = TaskFactory::new(class)?;
        for task in w.tasks {
            let id = PyString::new(py, &task.id);
            built.set_item(&id, factory.build(id.clone(), task)?)?;
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
        task_count,
        tasks: built.unbind(),
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

/// The legacy `validate_markdown` warnings for `content`.
#[pyfunction]
pub(crate) fn _state_md_validate(py: Python<'_>, content: Content<'_>) -> PyResult<Vec<String>> {
    let content = content.text()?;
    Ok(py.detach(|| state_md::validate(content)))
}

/// `(text, None)` for content that can be a `STATE.md`, `(None, why not)` otherwise (not UTF-8, empty,
/// nothing a parser could recover).
#[pyfunction]
pub(crate) fn _state_md_decode<'py>(
    py: Python<'py>,
    content: Content<'py>,
) -> PyResult<(Option<Bound<'py, PyString>>, Option<String>)> {
    let checked = match &content {
        Content::Text(text) => state_md::corruption(text.to_str()?).map_or(Ok(()), |r| Err(r.to_owned())),
        Content::Bytes(bytes) => state_md::decode(bytes.as_bytes()).map(|_| ()),
    };
    Ok(match (checked, &content) {
        (Err(reason), _) => (None, Some(reason)),
        (Ok(()), Content::Text(text)) => (Some(text.clone()), None),
        (Ok(()), Content::Bytes(_)) => (Some(PyString::new(py, content.text()?)), None),
    })
}

/// Why `content` cannot be a `STATE.md` at all, or `None`.
#[pyfunction]
pub(crate) fn _state_md_corruption(content: Content<'_>) -> PyResult<Option<String>> {
    Ok(match &content {
        Content::Text(text) => state_md::corruption(text.to_str()?).map(str::to_owned),
        Content::Bytes(bytes) => state_md::decode(bytes.as_bytes()).err(),
    })
}

/// Parse, append `note` (shown as `f"{note}"`), stamp `updated` (and `now` as the start time if the
/// file has none), render: `add_note` without building Python objects.
#[pyfunction]
pub(crate) fn _state_md_add_note(
    py: Python<'_>,
    content: Content<'_>,
    note: &Bound<'_, PyAny>,
    updated: &str,
    now: &str,
) -> PyResult<PyRenderedStateMd> {
    let note = values::text(note)?;
    let content = content.text()?;
    let (text, count) = py
        .detach(|| {
            let parsed = state_md::parse(content);
            let mut w = parsed.workflow;
            w.started = parsed.started.unwrap_or_else(|| now.to_owned());
            updated.clone_into(&mut w.updated);
            w.notes.push(note);
            state_md::render(&w).map(|text| (text, w.tasks.len()))
        })
        .map_err(values::render_error)?;
    Ok(PyRenderedStateMd::new(py, &text, count, Vec::new()))
}

/// Builds the caller's task dataclass for parsed tasks.
///
/// A plain dataclass (exactly the legacy fields, no `__post_init__`, and the `__new__` and
/// `__setattr__` of `object`) is built as its generated `__init__` would build it, field by field by
/// name, without calling it: `object.__new__(cls)` and one `setattr` per field. Any other class is
/// called with keyword arguments.
struct TaskFactory<'py> {
    class: Bound<'py, PyType>,
    /// `object.__new__`, for a plain dataclass.
    new: Option<Bound<'py, PyAny>>,
    /// One shared string per known status.
    statuses: [Bound<'py, PyString>; 4],
    /// The field names, interned.
    names: [Bound<'py, PyString>; 7],
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
        let object = py.get_type::<PyAny>();
        let plain = match class.getattr(intern!(py, "__dataclass_fields__")) {
            Ok(fields) => {
                let fields = fields.cast_into::<PyDict>()?;
                fields.len() == TASK_FIELDS.len()
                    && TASK_FIELDS.iter().all(|f| fields.contains(f).unwrap_or(false))
                    && !class.hasattr(intern!(py, "__post_init__"))?
                    && class
                        .getattr(intern!(py, "__new__"))?
                        .is(&object.getattr(intern!(py, "__new__"))?)
                    && class
                        .getattr(intern!(py, "__setattr__"))?
                        .is(&object.getattr(intern!(py, "__setattr__"))?)
            }
            Err(_) => false,
        };
        let new = if plain {
            Some(object.getattr(intern!(py, "__new__"))?)
        } else {
            None
        };
        let statuses = [Status::Pending, Status::InProgress, Status::Completed, Status::Failed]
            .map(|s| PyString::intern(py, s.name()));
        let names = TASK_FIELDS.map(|name| PyString::intern(py, name));
        Ok(Self {
            class,
            new,
            statuses,
            names,
        })
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
            files_list(py, &task.files)?.into_any(),
            task.commit.into_pyobject(py)?.into_any(),
            task.error.into_pyobject(py)?.into_any(),
        ];
        if let Some(new) = &self.new {
            let obj = new.call1((&self.class,))?;
            for (name, value) in self.names.iter().zip(values) {
                obj.setattr(name, value)?;
            }
            return Ok(obj);
        }
        let kwargs = PyDict::new(py);
        for (name, value) in self.names.iter().zip(values) {
            kwargs.set_item(name, value)?;
        }
        self.class.call((), Some(&kwargs))
    }
}

/// A new list of the files (most tasks have none: an empty list costs a tenth of a general one).
fn files_list<'py>(py: Python<'py>, files: &[String]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for file in files {
        list.append(PyString::new(py, file))?;
    }
    Ok(list)
}
