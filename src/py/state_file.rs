//! `ferrolock._ferrolock.StateFile`: the edit context manager, the draft it hands out, and a lock-only
//! context manager for callers that compose reads and writes themselves.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString, PyTuple};

use super::convert::{Data, FileMode, PathArg, SettableTimeout, holder_to_dict, wait_for};
use super::file_lock::acquire_for;
use super::wait::{Gil, attached, call, detached};
use crate::durable::{StateFile, StateFileOptions};
use crate::lock::{Owner, Seconds, Wait, WaitControl};

/// A file updated by locked read-modify-write and atomic, durable replacement.
#[pyclass(name = "StateFile", module = "ferrolock._ferrolock", frozen, subclass)]
pub(crate) struct PyStateFile {
    core: StateFile,
    /// Always `Some`: the timeout is a number (negative waits forever), as `FileLock`'s.
    timeout: SettableTimeout,
}

#[pymethods]
impl PyStateFile {
    #[new]
    #[pyo3(signature = (
        path, *, lock_path=None, backup_path=None, temp_path=None, timeout=Seconds::whole(-1), purpose=None, mode=None
    ))]
    #[pyo3(
        text_signature = "(path, *, lock_path=None, backup_path=None, temp_path=None, timeout=-1.0, \
        purpose=None, mode=None)"
    )]
    fn py_new(
        path: PathArg,
        lock_path: Option<PathArg>,
        backup_path: Option<PathArg>,
        temp_path: Option<PathArg>,
        timeout: Seconds,
        purpose: Option<String>,
        mode: Option<FileMode>,
    ) -> PyResult<Self> {
        let options = StateFileOptions {
            lock_path: lock_path.map(|p| p.0),
            backup_path: backup_path.map(|p| p.0),
            temp_path: temp_path.map(|p| p.0),
            mode: mode.map(|m| m.0),
            purpose,
        };
        Ok(Self {
            core: StateFile::new(path.0, &options)?,
            timeout: SettableTimeout::new(Some(timeout)),
        })
    }

    #[getter]
    fn path(&self) -> &OsStr {
        self.core.path().as_os_str()
    }

    #[getter]
    fn lock_path(&self) -> &OsStr {
        self.core.lock().path().as_os_str()
    }

    #[getter]
    fn backup_path(&self) -> Option<&OsStr> {
        self.core.backup_path().map(Path::as_os_str)
    }

    #[getter]
    fn temp_path(&self) -> Option<&OsStr> {
        self.core.temp_path().map(Path::as_os_str)
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.default_timeout().get()
    }

    #[setter]
    fn set_timeout(&self, value: Seconds) {
        self.timeout.set(Some(value));
    }

    #[getter]
    fn is_locked(&self) -> bool {
        self.core.lock().is_locked()
    }

    fn read<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let data = detached(py, || self.core.read())?;
        Ok(data.map(|d| PyBytes::new(py, &d)))
    }

    fn read_backup<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let data = detached(py, || self.core.read_backup())?;
        Ok(data.map(|d| PyBytes::new(py, &d)))
    }

    #[pyo3(signature = (timeout=None))]
    fn edit(slf: Bound<'_, Self>, timeout: Option<Seconds>) -> PyStateEdit {
        let timeout = timeout.unwrap_or_else(|| slf.get().default_timeout());
        PyStateEdit {
            file: slf.unbind(),
            timeout,
            active: None,
        }
    }

    #[pyo3(signature = (timeout=None))]
    fn locked(slf: Bound<'_, Self>, timeout: Option<Seconds>) -> PyStateLock {
        let timeout = timeout.unwrap_or_else(|| slf.get().default_timeout());
        PyStateLock {
            file: slf.unbind(),
            timeout,
            owner: None,
        }
    }

    #[pyo3(signature = (data, timeout=None))]
    fn write(&self, py: Python<'_>, data: Data, timeout: Option<Seconds>) -> PyResult<()> {
        let bytes = data.as_bytes();
        self.locked_op(py, timeout, |owner, wait, ctl| {
            self.core.write_as(owner, bytes, wait, ctl)
        })
    }

    #[pyo3(signature = (timeout=None))]
    fn remove(&self, py: Python<'_>, timeout: Option<Seconds>) -> PyResult<bool> {
        self.locked_op(py, timeout, |owner, wait, ctl| self.core.remove_as(owner, wait, ctl))
    }

    #[pyo3(signature = (dest, timeout=None))]
    fn set_aside(&self, py: Python<'_>, dest: PathArg, timeout: Option<Seconds>) -> PyResult<bool> {
        let dest: PathBuf = dest.0;
        self.locked_op(py, timeout, |owner, wait, ctl| {
            self.core.set_aside_as(owner, &dest, wait, ctl)
        })
    }

    fn holder<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.core.lock().holder().map(|h| holder_to_dict(py, &h)).transpose()
    }

    fn __repr__(&self) -> String {
        format!(
            "StateFile({:?}, lock_path={:?})",
            self.core.path().display().to_string(),
            self.core.lock().path().display().to_string()
        )
    }
}

impl PyStateFile {
    fn default_timeout(&self) -> Seconds {
        self.timeout.get().unwrap_or(Seconds::whole(-1))
    }

    /// Runs one of the core's locked operations for the calling thread under the interrupt protocol:
    /// the core takes the lock (waiting in the kernel as `timeout` allows), does the operation and
    /// releases, all with the GIL released.
    fn locked_op<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Option<Seconds>,
        op: impl FnOnce(Owner, Wait, &mut WaitControl<'_>) -> crate::Result<T> + Send,
    ) -> PyResult<T> {
        let owner = Owner::current_thread();
        let wait = wait_for(timeout.unwrap_or_else(|| self.default_timeout()), true);
        call(py, Gil::Release, None, drop, |ctl, _| op(owner, wait, ctl))
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
    timeout: Seconds,
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
        let (lock, wait) = (file.core.lock(), wait_for(self.timeout, true));
        let undo = |_| {
            let _ = lock.release_as(owner, false);
        };
        let read = call(py, Gil::Release, None, undo, |ctl, _| {
            lock.acquire_as(owner, wait, ctl)?;
            file.core.read().inspect_err(|_| {
                let _ = lock.release_as(owner, false);
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
        let write = exc_type.is_none_or(PyAnyMethods::is_none) && draft.changed;
        let bytes = draft.data.as_ref().map(|d| d.as_bytes(py));
        let gil = if write { Gil::Release } else { Gil::Keep };
        let outcome = call(py, gil, None, drop, |ctl, _| {
            // The edit holds the lock, so the write re-enters it and never waits.
            let written = match (write, bytes) {
                (false, _) => Ok(()),
                (true, Some(bytes)) => file.core.write_as(owner, bytes, Wait::Try, ctl),
                (true, None) => file.core.remove_as(owner, Wait::Try, ctl).map(|_| ()),
            };
            let released = file.core.lock().release_as(owner, false);
            written?; // the write's error matters more than a failed unlock
            released.map(|_| ())
        });
        file.end_edit(owner);
        outcome?;
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
    timeout: Seconds,
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
    fn __exit__(&mut self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        if let Some(owner) = self.owner.take() {
            let lock = self.file.get().core.lock();
            attached(py, || lock.release_as(owner, false))?;
        }
        Ok(false)
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}
