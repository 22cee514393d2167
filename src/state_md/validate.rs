//! The legacy `validate_markdown`: warnings about a `STATE.md`, in the legacy order and wording. The
//! legacy writer logged them before every write (and wrote anyway); so does ferrolock's.

use super::text::is_py_space;

/// The warnings for `text`, empty for a valid file: the legacy checks, in order.
///
/// * `^# Workflow:` (multi-line: after a `\n` only, as Python's `re.MULTILINE`);
/// * `Wave\s+\d+/\d+`, where `\s` is Python's whitespace and `\d` a digit (ASCII, or a non-ASCII
///   numeric character: a slightly wider class than Python's `\d`, which only changes whether a
///   warning is logged for such a file);
/// * `^## `;
/// * lines starting with a checkbox whose mark is not `x`, `~` or a space ([`bad_checkbox_lines`]);
/// * `Workflow ID:`, `Started:` and `Updated:` anywhere.
#[must_use]
pub fn validate(text: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    if !line_starts_with(text, "# Workflow:") {
        warnings.push("Missing '# Workflow:' header".to_owned());
    }
    if !has_wave_ratio(text) {
        warnings.push("Missing 'Wave X/Y' status line".to_owned());
    }
    if !line_starts_with(text, "## ") {
        warnings.push("Missing sections (## Completed, ## In Progress, etc.)".to_owned());
    }
    let invalid = bad_checkbox_lines(text);
    if invalid > 0 {
        warnings.push(format!("Invalid checkbox format in {invalid} lines"));
    }
    for (needle, warning) in [
        ("Workflow ID:", "Missing Workflow ID"),
        ("Started:", "Missing Started timestamp"),
        ("Updated:", "Missing Updated timestamp"),
    ] {
        if !text.contains(needle) {
            warnings.push(warning.to_owned());
        }
    }
    warnings
}

/// How many matches `re.findall(r'^- \[[^x~ ]\]', text, re.MULTILINE)` finds: lines (after a `\n`)
/// starting with a checkbox whose mark is not `x`, `~` or a space (the mark may even be a `\n`, as
/// the legacy pattern allows). The legacy validation's only check that reads the whole file.
#[must_use]
pub fn bad_checkbox_lines(text: &str) -> usize {
    line_starts(text)
        .filter(|&start| {
            let Some(after) = text[start..].strip_prefix("- [") else {
                return false;
            };
            let mut chars = after.chars();
            matches!((chars.next(), chars.next()), (Some(mark), Some(']')) if !matches!(mark, 'x' | '~' | ' '))
        })
        .count()
}

/// Where `re.MULTILINE`'s `^` matches: the start, and after every `\n`.
fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1))
}

fn line_starts_with(text: &str, prefix: &str) -> bool {
    line_starts(text).any(|start| text[start..].starts_with(prefix))
}

/// `re.search(r"Wave\s+\d+/\d+", text)`.
fn has_wave_ratio(text: &str) -> bool {
    let digits = |s: &str| -> Option<usize> {
        let end = s.find(|c: char| !is_digit(c)).unwrap_or(s.len());
        (end > 0).then_some(end)
    };
    text.match_indices("Wave").any(|(i, m)| {
        let rest = &text[i + m.len()..];
        let after_space = rest.trim_start_matches(is_py_space);
        if after_space.len() == rest.len() {
            return false;
        }
        let Some(n) = digits(after_space) else { return false };
        after_space[n..].strip_prefix('/').and_then(digits).is_some()
    })
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

#[cfg(test)]
mod tests {
    use super::{bad_checkbox_lines, validate};

    #[test]
    fn counts_bad_checkboxes_like_the_legacy_pattern() {
        assert_eq!(bad_checkbox_lines("- [x] a\n- [ ] b\n- [~] c"), 0);
        assert_eq!(bad_checkbox_lines("- [z] a\n  - [z] indented\n- [é] b\n- [\n]"), 3);
        assert_eq!(bad_checkbox_lines("x- [z]\r- [z]"), 0, "only \\n starts a line");
        assert_eq!(bad_checkbox_lines("- [zz]"), 0);
    }

    #[test]
    fn warns_in_the_legacy_order_and_wording() {
        assert_eq!(
            validate("- [z] x\n"),
            [
                "Missing '# Workflow:' header",
                "Missing 'Wave X/Y' status line",
                "Missing sections (## Completed, ## In Progress, etc.)",
                "Invalid checkbox format in 1 lines",
                "Missing Workflow ID",
                "Missing Started timestamp",
                "Missing Updated timestamp",
            ]
        );
        let valid = "# Workflow: a\n**Workflow ID:** `x`\n**Status:** Wave 1/2\nStarted: Updated:\n## Notes\n";
        assert!(validate(valid).is_empty(), "{:?}", validate(valid));
    }

    #[test]
    fn the_patterns_match_as_pythons_do() {
        let warned = |text: &str, warning: &str| validate(text).iter().any(|w| w == warning);
        let no_ratio = "Missing 'Wave X/Y' status line";
        assert!(!warned("Wave \u{a0}\t12/3", no_ratio), "any Python whitespace, several");
        assert!(warned("Wave12/3", no_ratio), "at least one space");
        assert!(warned("Wave 1/", no_ratio));
        assert!(!warned("Wave x Wave 1/2", no_ratio), "searched, not anchored");
        assert!(!warned("Wave ١/٢", no_ratio), "non-ASCII digits are digits");
        assert!(
            warned("x\r# Workflow: a", "Missing '# Workflow:' header"),
            "only \\n starts a line"
        );
        assert!(!warned(
            "x\n## y",
            "Missing sections (## Completed, ## In Progress, etc.)"
        ));
    }
}
