//! [`NativeFormat`]: ferrolock's own task queue file, one JSON object:
//!
//! ```json
//! {"tasks": [{"id": "T-1"},
//!            {"id": "T-2", "claim": {"by": "agent-7", "host": "build-3", "pid": 4121,
//!                                     "since": "2026-11-22T04:30:00.123456Z"}}],
//!  "version": 1}
//! ```
//!
//! Tasks keep their order and any other keys a tool put in them. A claim names its claimant (`by`)
//! and, for the record, where and when it was made.

use std::path::Path;

use serde_json::{Map, Value};

use super::model::{Entry, Lookup, ReleaseOutcome, TaskFormat};
use crate::error::Error;
use crate::lock::hostname;

/// The format's version, written into every file.
pub const NATIVE_VERSION: u64 = 1;

/// A claim as [`NativeFormat`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRecord {
    /// The claimant's name.
    pub by: String,
    /// The host it claimed from.
    pub host: String,
    /// The claiming process.
    pub pid: u64,
    /// When (RFC 3339, UTC).
    pub since: String,
}

/// The document of a [`NativeFormat`] file.
#[derive(Clone, Debug, Default)]
pub struct NativeDoc {
    /// Each task's JSON object (`id`, optional `claim`, and whatever else a tool stored in it).
    tasks: Vec<Map<String, Value>>,
}

impl NativeDoc {
    /// The ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().filter_map(|t| t.get("id").and_then(Value::as_str))
    }

    /// Appends each id not yet in the queue; returns how many were added.
    pub fn add<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) -> usize {
        let mut added = 0;
        for id in ids {
            if self.find(id).is_none() {
                let mut task = Map::new();
                task.insert("id".to_owned(), Value::String(id.to_owned()));
                self.tasks.push(task);
                added += 1;
            }
        }
        added
    }

    /// Removes each id in `ids` (claimed or not); returns how many were removed.
    pub fn remove(&mut self, ids: &[&str]) -> usize {
        let before = self.tasks.len();
        self.tasks
            .retain(|t| !t.get("id").and_then(Value::as_str).is_some_and(|id| ids.contains(&id)));
        before - self.tasks.len()
    }

    /// A string field of task `id`'s claim (`None` if the task, its claim or the field is missing).
    #[must_use]
    pub fn claim_field(&self, id: &str, key: &str) -> Option<&str> {
        self.tasks[self.find(id)?].get("claim")?.get(key)?.as_str()
    }

    /// Sets a string field of task `id`'s claim; does nothing if the task has no claim.
    pub fn set_claim_field(&mut self, id: &str, key: &str, value: &str) {
        if let Some(i) = self.find(id)
            && let Some(Value::Object(claim)) = self.tasks[i].get_mut("claim")
        {
            claim.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }

    /// Removes task `id`'s claim, whoever holds it.
    pub fn unclaim(&mut self, id: &str) {
        if let Some(i) = self.find(id) {
            self.tasks[i].remove("claim");
        }
    }

    /// Each task's id with its claim record, in queue order.
    pub fn claims(&self) -> impl Iterator<Item = (&str, Option<ClaimRecord>)> {
        self.tasks
            .iter()
            .filter_map(|t| Some((t.get("id")?.as_str()?, claim_of(t))))
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.tasks
            .iter()
            .position(|t| t.get("id").and_then(Value::as_str) == Some(id))
    }
}

/// ferrolock's own task file (see the module docs). Claimants are names.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeFormat;

impl TaskFormat for NativeFormat {
    type Doc = NativeDoc;
    type Claimant = str;
    type Owner = ClaimRecord;
    type Error = Error;

    fn decode(&mut self, path: &Path, data: &[u8]) -> Result<NativeDoc, Error> {
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let value: Value = serde_json::from_slice(data).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return Err(corrupt("the top level is not a JSON object".into()));
        };
        let Some(Value::Array(tasks)) = top.remove("tasks") else {
            return Err(corrupt("there is no \"tasks\" list".into()));
        };
        let mut doc = NativeDoc::default();
        for (i, task) in tasks.into_iter().enumerate() {
            let Value::Object(task) = task else {
                return Err(corrupt(format!("task {i} is not a JSON object")));
            };
            if !task.get("id").is_some_and(Value::is_string) {
                return Err(corrupt(format!("task {i} has no string \"id\"")));
            }
            if let Some(claim) = task.get("claim").filter(|c| !c.is_null()) {
                claim_record(claim).ok_or_else(|| corrupt(format!("task {i} has a malformed \"claim\"")))?;
            }
            doc.tasks.push(task);
        }
        Ok(doc)
    }

    fn encode(&mut self, doc: &NativeDoc) -> Result<Vec<u8>, Error> {
        let tasks = doc.tasks.iter().cloned().map(Value::Object).collect();
        let mut top = Map::new();
        top.insert("tasks".to_owned(), Value::Array(tasks));
        top.insert("version".to_owned(), Value::from(NATIVE_VERSION));
        // A `Value` always serializes: its keys are strings and it holds no non-finite numbers.
        let mut out = serde_json::to_vec_pretty(&Value::Object(top)).unwrap_or_default();
        out.push(b'\n');
        Ok(out)
    }

    fn lookup(&mut self, doc: &NativeDoc, id: &str) -> Result<Lookup<ClaimRecord>, Error> {
        Ok(match doc.find(id) {
            None => Lookup::Missing,
            Some(i) => claim_of(&doc.tasks[i]).map_or(Lookup::Free, Lookup::Claimed),
        })
    }

    fn unclaimed(&mut self, doc: &NativeDoc) -> Result<Option<Vec<String>>, Error> {
        Ok(Some(
            doc.tasks
                .iter()
                .filter(|t| claim_of(t).is_none())
                .filter_map(|t| t.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect(),
        ))
    }

    fn claim(&mut self, doc: &mut NativeDoc, id: &str, who: &str) -> Result<(), Error> {
        if let Some(i) = doc.find(id) {
            let record = serde_json::json!({
                "by": who,
                "host": hostname(),
                "pid": std::process::id(),
                "since": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            });
            doc.tasks[i].insert("claim".to_owned(), record);
        }
        Ok(())
    }

    fn release(
        &mut self,
        doc: &mut NativeDoc,
        id: &str,
        who: &str,
        force: bool,
    ) -> Result<ReleaseOutcome<ClaimRecord>, Error> {
        let Some(i) = doc.find(id) else {
            return Ok(ReleaseOutcome::Missing);
        };
        Ok(match claim_of(&doc.tasks[i]) {
            None => ReleaseOutcome::NotClaimed,
            Some(owner) if owner.by != who && !force => ReleaseOutcome::ClaimedByOther(owner),
            Some(_) => {
                doc.tasks[i].remove("claim");
                ReleaseOutcome::Released
            }
        })
    }

    fn tasks(&mut self, doc: &NativeDoc) -> Result<Vec<Entry<ClaimRecord>>, Error> {
        Ok(doc
            .tasks
            .iter()
            .filter_map(|t| {
                Some(Entry {
                    id: t.get("id")?.as_str()?.to_owned(),
                    owner: claim_of(t),
                })
            })
            .collect())
    }
}

fn claim_of(task: &Map<String, Value>) -> Option<ClaimRecord> {
    task.get("claim").and_then(claim_record)
}

fn claim_record(value: &Value) -> Option<ClaimRecord> {
    let text = |key: &str| value.get(key)?.as_str().map(str::to_owned);
    Some(ClaimRecord {
        by: text("by")?,
        host: text("host")?,
        pid: value.get("pid")?.as_u64()?,
        since: text("since")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_unknown_keys() {
        let mut f = NativeFormat;
        let mut doc = f
            .decode(
                Path::new("q.json"),
                br#"{"tasks": [{"id": "a", "note": "keep me"}, {"id": "b"}], "version": 1}"#,
            )
            .unwrap();
        assert_eq!(doc.add(["b", "c"]), 1);
        f.claim(&mut doc, "a", "agent").unwrap();
        let data = f.encode(&doc).unwrap();
        let back = f.decode(Path::new("q.json"), &data).unwrap();
        assert_eq!(back.ids().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(back.tasks[0]["note"], "keep me");
        let Lookup::Claimed(owner) = f.lookup(&back, "a").unwrap() else {
            panic!()
        };
        assert_eq!((owner.by.as_str(), u64::from(std::process::id())), ("agent", owner.pid));
        assert_eq!(f.unclaimed(&back).unwrap().unwrap(), ["b", "c"]);
    }

    #[test]
    fn release_checks_the_claimant() {
        let mut f = NativeFormat;
        let mut doc = NativeDoc::default();
        doc.add(["a"]);
        assert_eq!(
            f.release(&mut doc, "a", "x", false).unwrap(),
            ReleaseOutcome::NotClaimed
        );
        f.claim(&mut doc, "a", "x").unwrap();
        assert!(matches!(
            f.release(&mut doc, "a", "y", false).unwrap(),
            ReleaseOutcome::ClaimedByOther(_)
        ));
        assert_eq!(f.release(&mut doc, "a", "y", true).unwrap(), ReleaseOutcome::Released);
        assert_eq!(f.release(&mut doc, "zz", "y", true).unwrap(), ReleaseOutcome::Missing);
    }

    #[test]
    fn malformed_documents_are_refused_with_a_reason() {
        let mut f = NativeFormat;
        for (data, reason) in [
            (&b"[1]"[..], "the top level is not a JSON object"),
            (b"{}", "there is no \"tasks\" list"),
            (b"{\"tasks\": [3]}", "task 0 is not a JSON object"),
            (b"{\"tasks\": [{\"id\": 3}]}", "task 0 has no string \"id\""),
            (
                b"{\"tasks\": [{\"id\": \"a\", \"claim\": 1}]}",
                "task 0 has a malformed \"claim\"",
            ),
            (b"{\"tasks\": [", "not JSON"),
        ] {
            let err = f.decode(Path::new("q.json"), data).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
    }
}
