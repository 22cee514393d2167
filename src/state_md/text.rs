//! Python `str` semantics the legacy format depends on: which characters `str.strip()` removes, where
//! `str.splitlines()` breaks, and the few regular expressions of the legacy parser, written out.

use std::borrow::Cow;

/// `str.isspace()`: Unicode `White_Space` plus the four ASCII separators `\x1c`..`\x1f`.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()` without arguments. ASCII bytes are judged without decoding (most lines are ASCII at
/// both ends).
pub(crate) fn py_strip(s: &str) -> &str {
    let ascii_space = |b: u8| b == b' ' || (0x09..=0x0d).contains(&b) || (0x1c..=0x1f).contains(&b);
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|&b| !ascii_space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| !ascii_space(b)).map_or(start, |i| i + 1);
    let rest = &s[start..end.max(start)];
    if rest.as_bytes().first().is_some_and(u8::is_ascii) && rest.as_bytes().last().is_some_and(u8::is_ascii) {
        return rest;
    }
    rest.trim_matches(is_py_space)
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
    while let Some(offset) = find_candidate(&bytes[from..], &MAY_BREAK) {
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

/// The first byte of `bytes` that `table` marks. Eight bytes at a time are skipped when none of them
/// is a control byte or 0xC2/0xE2 (a word-at-a-time test; the table decides for the others).
fn find_candidate(bytes: &[u8], table: &[bool; 256]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Nonzero if some byte of `x` is below 0x20, or equals 0xC2 or 0xE2 (may err towards nonzero).
    let maybe = |x: u64| {
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let is = |b: u64| {
            let y = x ^ (ONES * b);
            y.wrapping_sub(ONES) & !y & HIGHS
        };
        below_space | is(0xC2) | is(0xE2)
    };
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        if maybe(word) != 0 {
            break;
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| table[usize::from(b)]).map(|p| i + p)
}

/// `s[n:]` counted in characters, as Python slices strings.
pub(crate) fn skip_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or("", |(i, _)| &s[i..])
}

/// The first match of `` `([^`]+)` ``: the text between the first two adjacent backticks that enclose
/// at least one character.
pub(crate) fn first_backticked(line: &str) -> Option<&str> {
    let mut open = line.find('`')?;
    loop {
        let close = open + 1 + line[open + 1..].find('`')?;
        if close > open + 1 {
            return Some(&line[open + 1..close]);
        }
        open = close;
    }
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
