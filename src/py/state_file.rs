//! `ferrolock._ferrolock.StateFile`: the edit context manager, the draft it hands out, and a lock-only
//! context manager for callers that compose reads and writes themselves.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString, PyTuple};

use super::convert::{holder_to_dict, wait_for};
use super::durable::Data;
use super::file_lock::acquire_for;
use crate::durable::{StateFile, StateFileOptions};
use crate::lock::{Owner, Wait, WaitControl};

/// A file updated by locked read-modify-write and atomic, durable replacement.
#[pyclass(name = "StateFile", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyStateFile {
    core: StateFile,
    /// The default timeout in seconds, as f64 bits (settable from any thread).
    timeout: AtomicU64,
    /// The paths as given (bytes that are not UTF-8 included), handed back through `os.fsdecode` rules.
    path: OsString,
    lock_path: OsString,
    backup_path: Option<OsString>,
    temp_path: Option<OsString>,
}

#[pymethods]
impl PyStateFile {
    #[new]
    #[pyo3(signature = (path, *, lock_path=None, backup_path=None, temp_path=None, timeout=-1.0, purpose=None, mode=None))]
    #[pyo3(
        text_signature = "(path, *, lock_path=None, backup_path=None, temp_path=None, timeout=-1.0, \
        purpose=None, mode=None)"
    )]
    fn py_new(
        path: PathBuf,
        lock_path: Option<PathBuf>,
        backup_path: Option<PathBuf>,
        temp_path: Option<PathBuf>,
        timeout: f64,
        purpose: Option<String>,
        mode: Option<u32>,
    ) -> PyResult<Self> {
        let options = StateFileOptions {
            lock_path,
            backup_path,
            temp_path,
            mode,
            purpose,
        };
        let core = StateFile::new(path, &options)?;
        let show = |p: &std::path::Path| p.as_os_str().to_owned();
        Ok(Self {
            path: show(core.path()),
            lock_path: show(core.lock().path()),
            backup_path: core.backup_path().map(show),
            temp_path: core.temp_path().map(show),
            core,
            timeout: AtomicU64::new(timeout.to_bits()),
        })
    }

    #[getter]
    fn path(&self) -> &OsStr {
        &self.path
    }

    #[getter]
    fn lock_path(&self) -> &OsStr {
        &self.lock_path
    }

    #[getter]
    fn backup_path(&self) -> Option<&OsStr> {
        self.backup_path.as_deref()
    }

    #[getter]
    fn temp_path(&self) -> Option<&OsStr> {
        self.temp_path.as_deref()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        f64::from_bits(self.timeout.load(Ordering::Relaxed))
    }

    #[setter]
    fn set_timeout(&self, value: f64) {
        self.timeout.store(value.to_bits(), Ordering::Relaxed);
    }

    #[getter]
    fn is_locked(&self) -> bool {
        self.core.lock().is_locked()
    }

    fn read<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let data = py.detach(|| self.core.read())?;
        Ok(data.map(|d| PyBytes::new(py, &d)))
    }

    fn read_backup<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let data = py.detach(|| self.core.read_backup())?;
        Ok(data.map(|d| PyBytes::new(py, &d)))
    }

    #[pyo3(signature = (timeout=None))]
    fn edit(slf: Bound<'_, Self>, timeout: Option<f64>) -> PyStateEdit {
        let timeout = timeout.unwrap_or_else(|| slf.get().timeout());
        PyStateEdit {
            file: slf.unbind(),
            timeout,
            active: None,
        }
    }

    #[pyo3(signature = (timeout=None))]
    fn locked(slf: Bound<'_, Self>, timeout: Option<f64>) -> PyStateLock {
        let timeout = timeout.unwrap_or_else(|| slf.get().timeout());
        PyStateLock {
            file: slf.unbind(),
            timeout,
            owner: None,
        }
    }

    #[pyo3(signature = (data, timeout=None))]
    fn write(&self, py: Python<'_>, data: Data, timeout: Option<f64>) -> PyResult<()> {
        let bytes = data.as_bytes();
        self.locked_op(py, timeout, |owner, ctl| {
            self.core.write_as(owner, bytes, Wait::Try, ctl)
        })
    }

    #[pyo3(signature = (timeout=None))]
    fn remove(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.locked_op(py, timeout, |owner, ctl| self.core.remove_as(owner, Wait::Try, ctl))
    }

    #[pyo3(signature = (dest, timeout=None))]
    fn set_aside(&self, py: Python<'_>, dest: PathBuf, timeout: Option<f64>) -> PyResult<bool> {
        self.locked_op(py, timeout, |owner, ctl| {
            self.core.set_aside_as(owner, &dest, Wait::Try, ctl)
        })
    }

    fn holder<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.core.lock().holder().map(|h| holder_to_dict(py, &h)).transpose()
    }

    fn __repr__(&self) -> String {
        format!(
            "StateFile({:?}, lock_path={:?})",
            self.path.display().to_string(),
            self.lock_path.display().to_string()
        )
    }
}

impl PyStateFile {
    /// Takes the lock for the calling thread (a kernel wait with the GIL released, Ctrl-C honoured),
    /// runs `op` with the GIL released (it re-enters the lock, so it never waits), then releases.
    fn locked_op<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        op: impl FnOnce(Owner, &mut WaitControl<'_>) -> crate::Result<T> + Send,
    ) -> PyResult<T> {
        let owner = Owner::current_thread();
        let wait = wait_for(timeout.unwrap_or_else(|| self.timeout()), true);
        acquire_for(py, self.core.lock(), owner, wait, None)?;
        let outcome = py.detach(|| op(owner, &mut WaitControl::default()));
        let released = self.core.lock().release_as(owner, false);
        let value = outcome?;
        released?;
        Ok(value)
    }

    fn begin_edit(&self, owner: Owner) -> PyResult<()> {
        Ok(self.core.begin_edit(owner)?)
    }

    fn end_edit(&self, owner: Owner) {
        self.core.end_edit(owner);
    }
}

/// Returned by `StateFile.edit()`: entering takes the lock and reads; exiting writes the draft if it
/// was changed and no exception is propagating, and always releases.
#[pyclass(name = "StateEdit", module = "ferrolock._ferrolock")]
pub(crate) struct PyStateEdit {
    file: Py<PyStateFile>,
    timeout: f64,
    active: Option<(Owner, Py<PyStateDraft>)>,
}

#[pymethods]
impl PyStateEdit {
    fn __enter__(&mut self, py: Python<'_>) -> PyResult<Py<PyStateDraft>> {
        if self.active.is_some() {
            return Err(PyRuntimeError::new_err("this edit is already in progress"));
        }
        let file = self.file.get();
        let owner = Owner::current_thread();
        file.begin_edit(owner)?;
        let read = acquire_for(py, file.core.lock(), owner, wait_for(self.timeout, true), None).and_then(|_| {
            py.detach(|| file.core.read()).map_err(|e| {
                let _ = file.core.lock().release_as(owner, false);
                PyErr::from(e)
            })
        });
        let data = match read {
            Ok(data) => data,
            Err(e) => {
                file.end_edit(owner);
                return Err(e);
            }
        };
        let draft = Py::new(
            py,
            PyStateDraft {
                exists: data.is_some(),
                data: data.map(|d| PyBytes::new(py, &d).unbind()),
                changed: false,
            },
        )?;
        self.active = Some((owner, draft.clone_ref(py)));
        Ok(draft)
    }

    #[pyo3(signature = (exc_type, _exc_value, _traceback))]
    fn __exit__(
        &mut self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let Some((owner, draft)) = self.active.take() else {
            return Ok(false);
        };
        let file = self.file.get();
        let draft = draft.borrow(py);
        let mut outcome = Ok(());
        if exc_type.is_none_or(PyAnyMethods::is_none) && draft.changed {
            // The edit holds the lock, so these re-enter it and never wait.
            outcome = match &draft.data {
                Some(data) => {
                    let bytes = data.as_bytes(py);
                    py.detach(|| file.core.write_as(owner, bytes, Wait::Try, &mut WaitControl::default()))
                }
                None => py.detach(|| {
                    file.core
                        .remove_as(owner, Wait::Try, &mut WaitControl::default())
                        .map(|_| ())
                }),
            };
        }
        let released = file.core.lock().release_as(owner, false);
        file.end_edit(owner);
        outcome?;
        released?;
        Ok(false)
    }
}

/// The content of a state file inside an edit: read it, replace it.
#[pyclass(name = "StateDraft", module = "ferrolock._ferrolock")]
pub(crate) struct PyStateDraft {
    data: Option<Py<PyBytes>>,
    exists: bool,
    changed: bool,
}

#[pymethods]
impl PyStateDraft {
    #[getter]
    fn data(&self, py: Python<'_>) -> Option<Py<PyBytes>> {
        self.data.as_ref().map(|d| d.clone_ref(py))
    }

    #[setter]
    fn set_data(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.data = match value {
            None => None,
            Some(v) if v.is_none() => None,
            Some(v) => {
                if let Ok(bytes) = v.cast::<PyBytes>() {
                    Some(bytes.clone().unbind())
                } else if let Ok(array) = v.cast::<PyByteArray>() {
                    Some(PyBytes::new(v.py(), &array.to_vec()).unbind())
                } else {
                    return Err(PyTypeError::new_err(format!(
                        "StateDraft.data must be bytes or None, not {}",
                        v.get_type().name()?
                    )));
                }
            }
        };
        self.changed = true;
        Ok(())
    }

    #[getter]
    fn text<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.data
            .as_ref()
            .map(|d| PyString::from_encoded_object(d.bind(py).as_any(), Some(c"utf-8"), Some(c"strict")))
            .transpose()
    }

    #[setter]
    fn set_text(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.data = match value {
            None => None,
            Some(v) if v.is_none() => None,
            Some(v) => {
                let text = v
                    .cast::<PyString>()
                    .map_err(|_| PyTypeError::new_err("StateDraft.text must be str or None"))?;
                Some(PyBytes::new(v.py(), text.to_str()?.as_bytes()).unbind())
            }
        };
        self.changed = true;
        Ok(())
    }

    #[getter]
    fn exists(&self) -> bool {
        self.exists
    }

    #[getter]
    fn changed(&self) -> bool {
        self.changed
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let size = self.data.as_ref().map(|d| d.bind(py).as_bytes().len());
        format!(
            "StateDraft(exists={}, changed={}, size={})",
            py_bool(self.exists),
            py_bool(self.changed),
            size.map_or_else(|| "None".to_owned(), |n| n.to_string())
        )
    }
}

/// Returned by `StateFile.locked()`: holds the lock (and nothing else) while the block runs.
#[pyclass(name = "StateLock", module = "ferrolock._ferrolock")]
pub(crate) struct PyStateLock {
    file: Py<PyStateFile>,
    timeout: f64,
    owner: Option<Owner>,
}

#[pymethods]
impl PyStateLock {
    fn __enter__(&mut self, py: Python<'_>) -> PyResult<Py<PyStateFile>> {
        if self.owner.is_some() {
            return Err(PyRuntimeError::new_err("this lock block is already active"));
        }
        let owner = Owner::current_thread();
        acquire_for(
            py,
            self.file.get().core.lock(),
            owner,
            wait_for(self.timeout, true),
            None,
        )?;
        self.owner = Some(owner);
        Ok(self.file.clone_ref(py))
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if let Some(owner) = self.owner.take() {
            self.file.get().core.lock().release_as(owner, false)?;
        }
        Ok(false)
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}
