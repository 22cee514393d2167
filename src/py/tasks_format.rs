//! A task-queue format written in Python (an object with `decode`, `encode`, `lookup`, `unclaimed`,
//! `claim`, `release` and `tasks` methods; see `TaskQueue` in the stubs), for the core's queue. Its
//! documents, claimants and claims stay Python objects.

use std::borrow::Borrow;
use std::path::Path;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::{Py, intern};

use super::wait::Interruption;
use crate::error::Error;
use crate::tasks::{ClaimRecord, Entry, Lookup, NativeFormat, ReleaseOutcome, TaskFormat};

/// A format's failure: the core's own error, or the exception a method of the Python format raised.
pub(crate) enum BridgeError {
    Core(Error),
    Py(PyErr),
}

impl From<Error> for BridgeError {
    fn from(e: Error) -> Self {
        Self::Core(e)
    }
}

impl From<PyErr> for BridgeError {
    fn from(e: PyErr) -> Self {
        Self::Py(e)
    }
}

impl Interruption for BridgeError {
    fn is_interruption(&self) -> bool {
        matches!(self, Self::Core(Error::Interrupted { .. }))
    }
}

impl From<BridgeError> for PyErr {
    fn from(e: BridgeError) -> Self {
        match e {
            BridgeError::Core(e) => e.into(),
            BridgeError::Py(e) => e,
        }
    }
}

/// The Python format object.
pub(crate) struct PyFormat(pub(crate) Py<PyAny>);

impl PyFormat {
    fn call<'py>(
        &self,
        py: Python<'py>,
        name: &Bound<'py, pyo3::types::PyString>,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.0.bind(py).call_method1(name, args)
    }
}

impl TaskFormat for PyFormat {
    type Doc = Py<PyAny>;
    type Claimant = Py<PyAny>;
    type Owner = Py<PyAny>;
    type Error = BridgeError;

    fn decode(&mut self, _path: &Path, data: &[u8]) -> Result<Py<PyAny>, BridgeError> {
        Python::attach(|py| {
            Ok(self
                .call(py, intern!(py, "decode"), (PyBytes::new(py, data),))?
                .unbind())
        })
    }

    fn encode(&mut self, doc: &Py<PyAny>) -> Result<Vec<u8>, BridgeError> {
        Python::attach(|py| Ok(self.call(py, intern!(py, "encode"), (doc,))?.extract::<Vec<u8>>()?))
    }

    fn lookup(&mut self, doc: &Py<PyAny>, id: &str) -> Result<Lookup<Py<PyAny>>, BridgeError> {
        Python::attach(|py| {
            let (kind, owner): (String, Py<PyAny>) = self.call(py, intern!(py, "lookup"), (doc, id))?.extract()?;
            Ok(match kind.as_str() {
                "missing" => Lookup::Missing,
                "free" => Lookup::Free,
                "claimed" => Lookup::Claimed(owner),
                other => return Err(unknown("lookup", other).into()),
            })
        })
    }

    fn unclaimed(&mut self, doc: &Py<PyAny>) -> Result<Option<Vec<String>>, BridgeError> {
        Python::attach(|py| Ok(self.call(py, intern!(py, "unclaimed"), (doc,))?.extract()?))
    }

    fn claim(&mut self, doc: &mut Py<PyAny>, id: &str, who: &Py<PyAny>) -> Result<(), BridgeError> {
        Python::attach(|py| {
            self.call(py, intern!(py, "claim"), (&*doc, id, who))?;
            Ok(())
        })
    }

    fn release(
        &mut self,
        doc: &mut Py<PyAny>,
        id: &str,
        who: &Py<PyAny>,
        force: bool,
    ) -> Result<ReleaseOutcome<Py<PyAny>>, BridgeError> {
        Python::attach(|py| {
            let (kind, owner): (String, Py<PyAny>) = self
                .call(py, intern!(py, "release"), (&*doc, id, who, force))?
                .extract()?;
            Ok(match kind.as_str() {
                "released" => ReleaseOutcome::Released,
                "not_claimed" => ReleaseOutcome::NotClaimed,
                "claimed_by_other" => ReleaseOutcome::ClaimedByOther(owner),
                "missing" => ReleaseOutcome::Missing,
                other => return Err(unknown("release", other).into()),
            })
        })
    }

    fn tasks(&mut self, doc: &Py<PyAny>) -> Result<Vec<Entry<Py<PyAny>>>, BridgeError> {
        Python::attach(|py| {
            let pairs: Vec<(String, Option<Py<PyAny>>)> = self.call(py, intern!(py, "tasks"), (doc,))?.extract()?;
            Ok(pairs.into_iter().map(|(id, owner)| Entry { id, owner }).collect())
        })
    }
}

fn unknown(method: &str, kind: &str) -> PyErr {
    PyValueError::new_err(format!(
        "the task format's {method}() returned an unknown outcome {kind:?}"
    ))
}

/// A format as the binding drives it: how Python's `by` becomes its claimant, how its claims reach
/// Python, and which of its errors means "a signal check stopped the wait".
pub(crate) trait Bridged: TaskFormat + Send
where
    Self::Error: Interruption + Send,
{
    /// The claimant, owned.
    type Who: Borrow<Self::Claimant> + Send + Sync;

    fn who(by: &Bound<'_, PyAny>) -> PyResult<Self::Who>;

    fn owner(py: Python<'_>, owner: Self::Owner) -> PyResult<Py<PyAny>>;
}

impl Bridged for NativeFormat {
    type Who = String;

    fn who(by: &Bound<'_, PyAny>) -> PyResult<String> {
        by.extract()
    }

    /// `{"by", "host", "pid", "since"}`.
    fn owner(py: Python<'_>, record: ClaimRecord) -> PyResult<Py<PyAny>> {
        let d = PyDict::new(py);
        d.set_item("by", &record.by)?;
        d.set_item("host", &record.host)?;
        d.set_item("pid", record.pid)?;
        d.set_item("since", &record.since)?;
        Ok(d.into_any().unbind())
    }
}

impl Bridged for PyFormat {
    type Who = Py<PyAny>;

    fn who(by: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Ok(by.clone().unbind())
    }

    fn owner(_py: Python<'_>, owner: Py<PyAny>) -> PyResult<Py<PyAny>> {
        Ok(owner)
    }
}
