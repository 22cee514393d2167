//! Coordinator URLs: `file://DIR` and `postgresql://...` (also `postgres://`).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// A parsed coordinator URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordUrl {
    /// `file://DIR`: flock locks under `DIR` (`file:///abs/dir`, or `file://rel/dir` from the current
    /// directory). `%XX` escapes are decoded.
    File {
        /// The directory that holds the lock files.
        dir: PathBuf,
    },
    /// `postgresql://` or `postgres://`: the URL as given (the PostgreSQL backend parses it).
    Postgres {
        /// The whole URL.
        url: String,
    },
}

impl CoordUrl {
    /// Parses `url`.
    ///
    /// # Errors
    /// [`Error::Coordinator`] for an unknown scheme or an empty directory.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("file://") {
            let dir = percent_decode(rest)?;
            if dir.is_empty() {
                return Err(bad_url(url, "file:// needs a directory (file:///var/lib/myapp/locks)"));
            }
            return Ok(Self::File {
                dir: PathBuf::from(dir),
            });
        }
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            return Ok(Self::Postgres { url: url.to_owned() });
        }
        Err(bad_url(url, "the scheme must be file:// or postgresql://"))
    }
}

fn bad_url(url: &str, why: &str) -> Error {
    Error::Coordinator {
        op: "coordinator URL",
        message: format!("{}: {why}", redact(url)),
    }
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad_url(s, "bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad_url(s, "the directory is not UTF-8"))
}

/// `url` with any password replaced by `***` (in the authority and in a `password=` parameter), for
/// messages, logs and `status`.
#[must_use]
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..].find(['/', '?']).map_or(out.len(), |i| auth_start + i);
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = &out[auth_start..auth_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(auth_start + colon + 1..auth_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***".to_owned()
                } else {
                    kv.to_owned()
                }
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes() {
        assert_eq!(
            CoordUrl::parse("file:///var/lib/x%20y").unwrap(),
            CoordUrl::File {
                dir: "/var/lib/x y".into()
            }
        );
        assert!(matches!(
            CoordUrl::parse("postgres://h/db"),
            Ok(CoordUrl::Postgres { .. })
        ));
        assert!(CoordUrl::parse("redis://h").is_err());
        assert!(CoordUrl::parse("file://").is_err());
        assert!(CoordUrl::parse("file:///a%zz").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgresql://u:secret@h:5/db?lease=2s"),
            "postgresql://u:***@h:5/db?lease=2s"
        );
        assert_eq!(
            redact("postgresql://h/db?password=secret&x=1"),
            "postgresql://h/db?password=***&x=1"
        );
        assert_eq!(redact("postgresql://u@h/db"), "postgresql://u@h/db");
    }
}
