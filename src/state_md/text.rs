//! Python `str` semantics the legacy format depends on: which characters `str.strip()` removes, where
//! `str.splitlines()` breaks, and the few regular expressions of the legacy parser, written out.

use std::borrow::Cow;

/// `str.isspace()`: Unicode `White_Space` plus the four ASCII separators `\x1c`..`\x1f`.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()` without arguments.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `str.splitlines()`: breaks at `\n`, `\r`, `\r\n`, `\v`, `\f`, `\x1c`-`\x1e`, `\x85`, U+2028 and
/// U+2029, and yields no empty last line for a trailing break.
pub(crate) fn lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((at, len)) = next_line_break(rest.as_bytes()) else {
            return Some(std::mem::take(&mut rest));
        };
        let line = &rest[..at];
        let mut next = at + len;
        if len == 1 && rest.as_bytes()[at] == b'\r' && rest.as_bytes().get(next) == Some(&b'\n') {
            next += 1;
        }
        rest = &rest[next..];
        Some(line)
    })
}

/// `s` on one line: each line break (as [`lines`] finds them) becomes a space, which is also how
/// Markdown displays a soft break. The renderer passes every field through this, because the format
/// is line-based: a description with a line break (an agent's prompt, typically) could otherwise
/// forge tasks (`- [x] **T-9**: ...`), statuses (`  - Error: ...`), sections or metadata.
pub(crate) fn one_line(s: &str) -> Cow<'_, str> {
    if next_line_break(s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(lines(s).collect::<Vec<_>>().join(" "))
}

/// The byte offset and length of the first line break in UTF-8 text. Scans bytes against a table (a
/// line break is an ASCII control byte, or starts with 0xC2 or 0xE2), several times faster than
/// decoding every character.
fn next_line_break(bytes: &[u8]) -> Option<(usize, usize)> {
    static MAY_BREAK: [bool; 256] = {
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            table[i] = matches!(i as u8, b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1e | 0xC2 | 0xE2);
            i += 1;
        }
        table
    };
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| MAY_BREAK[usize::from(b)]) {
        let i = from + offset;
        match bytes[i] {
            0xC2 if bytes.get(i + 1) == Some(&0x85) => return Some((i, 2)),
            0xE2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) => {
                return Some((i, 3));
            }
            0xC2 | 0xE2 => from = i + 1,
            _ => return Some((i, 1)),
        }
    }
    None
}

/// `s[n:]` counted in characters, as Python slices strings.
pub(crate) fn skip_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or("", |(i, _)| &s[i..])
}

/// The first match of `` `([^`]+)` ``: the text between the first two adjacent backticks that enclose
/// at least one character.
pub(crate) fn first_backticked(line: &str) -> Option<&str> {
    let ticks: Vec<usize> = line.match_indices('`').map(|(i, _)| i).collect();
    ticks
        .windows(2)
        .find(|w| w[1] > w[0] + 1)
        .map(|w| &line[w[0] + 1..w[1]])
}

/// A run of ASCII digits at the start of `s`, as a number, and the rest. `None` if there is no digit
/// or the number does not fit (a value no workflow has).
pub(crate) fn leading_number(s: &str) -> Option<(i64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// `re.sub(r'-\s*LABEL\s*', '', line)` for a label such as `Files:`: every `-`, optional whitespace,
/// the label and optional whitespace, removed.
pub(crate) fn remove_dash_label(line: &str, label: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('-') {
        let after_dash = rest[i + 1..].trim_start_matches(is_py_space);
        if let Some(after_label) = after_dash.strip_prefix(label) {
            out.push_str(&rest[..i]);
            rest = after_label.trim_start_matches(is_py_space);
        } else {
            out.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        let got: Vec<&str> = lines("a\r\nb\rc\nd\u{2028}e\x0bf\u{85}g\u{2029}h\u{2027}\n").collect();
        assert_eq!(got, ["a", "b", "c", "d", "e", "f", "g", "h\u{2027}"]);
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("\n\n").collect::<Vec<_>>(), ["", ""]);
        assert_eq!(lines("x").collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn strip_matches_python() {
        assert_eq!(py_strip("\u{1f} \u{a0}x y\t\u{3000}"), "x y");
        assert_eq!(py_strip("\u{200b}x"), "\u{200b}x", "zero-width space is not whitespace");
    }

    #[test]
    fn backticks_and_numbers() {
        assert_eq!(first_backticked("**Workflow ID:** `wf_1`"), Some("wf_1"));
        assert_eq!(first_backticked("``x` y"), Some("x"));
        assert_eq!(first_backticked("`` ``"), Some(" "));
        assert_eq!(first_backticked("no ticks"), None);
        assert_eq!(leading_number("12/3"), Some((12, "/3")));
        assert_eq!(leading_number("/3"), None);
        assert_eq!(leading_number("99999999999999999999"), None);
        assert_eq!(skip_chars("# Workflow: é", 12), "é");
        assert_eq!(skip_chars("ab", 5), "");
    }

    #[test]
    fn dash_label_removal_matches_re_sub() {
        assert_eq!(remove_dash_label("  - Files: a.py, b.py", "Files:"), "  a.py, b.py");
        assert_eq!(remove_dash_label("- Files:x -  Files: y", "Files:"), "x y");
        assert_eq!(remove_dash_label("a-b - Error:  boom", "Error:"), "a-b boom");
    }
}
