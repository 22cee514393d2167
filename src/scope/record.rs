//! The claim record: the JSON that little-loops keeps in `.running/<name>.lock`.
//!
//! ```text
//! {"loop_name": "fix", "scope": ["/repo/src"], "pid": 4121, "started_at": "2026-11-22T04:07:12.380965+00:00", "ferrolock": 1}
//! ```
//!
//! The first four keys (and `"singleton": true` when set) are the legacy format, written in the legacy
//! order and spacing (Python's `json.dumps` defaults), so every legacy reader keeps working. The
//! trailing `"ferrolock"` key marks a record whose liveness is its kernel lock: ferrolock holds the
//! record file with `flock(LOCK_EX)` for the claim's lifetime, so an unheld marked record is dead
//! whatever its pid says. Records without the marker come from legacy processes, which never lock
//! them; they are judged by pid, as the legacy code does.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::Value;

/// The key that marks a record written (and flock-held) by ferrolock.
pub const MARKER_KEY: &str = "ferrolock";

/// The marker's value: the version of the claim protocol.
pub const PROTOCOL_VERSION: u64 = 1;

/// One claim record, with the legacy `ScopeLock.from_dict` coercions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRecord {
    /// The claiming loop's name.
    pub loop_name: String,
    /// The claimed paths (normalised by the claimant when it claimed them).
    pub scope: Vec<String>,
    /// The claimant's process id as it recorded it.
    pub pid: i64,
    /// When the claim was made (ISO 8601, as the claimant wrote it).
    pub started_at: String,
    /// A singleton claim conflicts with every other singleton claim of the same loop name.
    pub singleton: bool,
    /// A shared claim does not conflict with other shared claims (a ferrolock extension, written as
    /// `"shared": true` only when set; legacy claims are always exclusive).
    pub shared: bool,
    /// True if the record carries ferrolock's marker (its liveness is its kernel lock).
    pub marked: bool,
}

impl ScopeRecord {
    /// Parses a record the way legacy `ScopeLock.from_dict(json.load(f))` reads it: `loop_name` and
    /// `started_at` become strings, a scope that is not a list becomes a one-element list, `pid` an
    /// integer, `singleton` Python truthiness, defaulting to false. Unknown keys are ignored.
    ///
    /// # Errors
    /// A short reason when the bytes are not such a record. The legacy code crashed on several of
    /// these (a non-integer pid, a non-object document); here every one is a skippable record.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(obj) = value else {
            return Err("not a JSON object".to_owned());
        };
        let field = |key: &str| obj.get(key).ok_or_else(|| format!("no {key:?} key"));
        let scope = match field("scope")? {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| "a scope entry is not a string".to_owned())?,
            other => vec![python_str(other).ok_or_else(|| "scope is not a list or string".to_owned())?],
        };
        Ok(Self {
            loop_name: python_str(field("loop_name")?).ok_or_else(|| "loop_name is not a string".to_owned())?,
            scope,
            pid: python_int(field("pid")?).ok_or_else(|| "pid is not an integer".to_owned())?,
            started_at: python_str(field("started_at")?).ok_or_else(|| "started_at is not a string".to_owned())?,
            singleton: obj.get("singleton").is_some_and(truthy),
            shared: obj.get("shared").is_some_and(truthy),
            marked: obj.contains_key(MARKER_KEY),
        })
    }

    /// The record as legacy `json.dump(ScopeLock.to_dict(), f)` writes it (`", "` and `": "`
    /// separators, non-ASCII escaped, no newline), followed by the marker when `marked`.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"loop_name\": ");
        push_json_str(&mut out, &self.loop_name);
        out.push_str(", \"scope\": [");
        for (i, path) in self.scope.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_json_str(&mut out, path);
        }
        let _ = write!(out, "], \"pid\": {}, \"started_at\": ", self.pid);
        push_json_str(&mut out, &self.started_at);
        if self.singleton {
            out.push_str(", \"singleton\": true");
        }
        if self.shared {
            out.push_str(", \"shared\": true");
        }
        if self.marked {
            let _ = write!(out, ", \"{MARKER_KEY}\": {PROTOCOL_VERSION}");
        }
        out.push('}');
        out
    }
}

/// Python's `str()` of a JSON scalar, for the legacy `str(data[key])` coercions. Containers and null
/// are refused: their `str()` is a Python repr no legacy writer ever produced.
fn python_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Python's `int()` of a JSON value, restricted to what is unambiguous: an integer, or a string
/// holding one (surrounding whitespace allowed, as `int(" 42 ")` does).
fn python_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Python truthiness of a JSON value (`bool(data.get("singleton", False))`).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Appends `s` as a JSON string the way Python's `json.dumps` (with `ensure_ascii=True`) does:
/// `"` and `\` escaped, `\n \r \t \b \f` by name, everything else outside printable ASCII as `\uXXXX`
/// (UTF-16 surrogate pairs above the BMP).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Now as Python's `datetime.now(UTC).isoformat()` writes it: `2026-11-22T04:07:12.380965+00:00`,
/// without the fraction when the microseconds are zero.
#[must_use]
pub fn iso_now() -> String {
    iso_time(SystemTime::now())
}

pub(crate) fn iso_time(t: SystemTime) -> String {
    let text = humantime::format_rfc3339_micros(t).to_string();
    let text = text.strip_suffix('Z').unwrap_or(&text);
    let text = text.strip_suffix(".000000").unwrap_or(text);
    format!("{text}+00:00")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn record() -> ScopeRecord {
        ScopeRecord {
            loop_name: "fix".into(),
            scope: vec!["/repo/src".into(), "/repo/ü \"q\"".into()],
            pid: 4121,
            started_at: "2026-11-22T04:07:12.380965+00:00".into(),
            singleton: false,
            shared: false,
            marked: true,
        }
    }

    #[test]
    fn renders_like_python_json_dumps() {
        assert_eq!(
            record().render(),
            r#"{"loop_name": "fix", "scope": ["/repo/src", "/repo/\u00fc \"q\""], "pid": 4121, "started_at": "2026-11-22T04:07:12.380965+00:00", "ferrolock": 1}"#
        );
        let legacy = ScopeRecord {
            singleton: true,
            marked: false,
            scope: vec![],
            ..record()
        };
        assert!(legacy.render().ends_with(
            r#""scope": [], "pid": 4121, "started_at": "2026-11-22T04:07:12.380965+00:00", "singleton": true}"#
        ));
    }

    #[test]
    fn shared_round_trips_and_defaults_to_exclusive() {
        let shared = ScopeRecord {
            shared: true,
            ..record()
        };
        let text = shared.render();
        assert!(text.contains(r#""shared": true"#), "{text}");
        assert_eq!(ScopeRecord::parse(text.as_bytes()), Ok(shared));
        assert!(!ScopeRecord::parse(record().render().as_bytes()).expect("parses").shared);
    }

    #[test]
    fn escapes_astral_characters_as_surrogate_pairs() {
        let mut out = String::new();
        push_json_str(&mut out, "a\u{1F600}\u{7f}\u{1}");
        assert_eq!(out, r#""a\ud83d\ude00\u007f\u0001""#);
    }

    #[test]
    fn round_trips() {
        let r = record();
        assert_eq!(ScopeRecord::parse(r.render().as_bytes()), Ok(r));
    }

    #[test]
    fn applies_the_legacy_coercions() {
        let r =
            ScopeRecord::parse(br#"{"loop_name": 7, "scope": "src/", "pid": "42", "started_at": "t", "singleton": 1}"#)
                .expect("parses");
        assert_eq!(r.loop_name, "7");
        assert_eq!(r.scope, vec!["src/".to_owned()]);
        assert_eq!(r.pid, 42);
        assert!(r.singleton);
        assert!(!r.marked);
    }

    #[test]
    fn rejects_what_is_not_a_record() {
        for junk in [
            &b""[..],
            b"{\"loop_name\": \"a\", \"scope\": [\"",
            b"[1]",
            b"{\"scope\": [], \"pid\": 1, \"started_at\": \"t\"}",
            b"{\"loop_name\": \"a\", \"scope\": [1], \"pid\": 1, \"started_at\": \"t\"}",
            b"{\"loop_name\": \"a\", \"scope\": [], \"pid\": \"x\", \"started_at\": \"t\"}",
            b"{\"loop_name\": null, \"scope\": [], \"pid\": 1, \"started_at\": \"t\"}",
        ] {
            assert!(ScopeRecord::parse(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn iso_time_matches_python_isoformat() {
        let t = UNIX_EPOCH + Duration::from_micros(1_763_784_432_380_965);
        assert_eq!(iso_time(t), "2025-11-22T04:07:12.380965+00:00");
        assert_eq!(
            iso_time(UNIX_EPOCH + Duration::from_secs(1)),
            "1970-01-01T00:00:01+00:00"
        );
    }
}
