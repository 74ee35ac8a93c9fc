//! Folded ("collapsed") stacks: one `root;caller;leaf value` per line, the input of inferno and
//! flamegraph.pl. Writing them is where frame names must be made safe, because the format
//! gives `;`, line breaks and a trailing number special meaning.

use crate::profile::{Profile, Stack};
use std::collections::BTreeMap;

/// Stands in for `;` inside a frame name: FULLWIDTH SEMICOLON looks the same to a reader but
/// does not split frames.
const SEMICOLON_STANDIN: &str = "\u{ff1b}";
/// Glues a trailing number to the rest of the frame: NO-BREAK SPACE is not the ASCII space
/// that folded-stack readers split the count off at.
const GLUE_SPACE: char = '\u{a0}';
/// Shown for a frame that is empty (or only whitespace) after cleaning.
const EMPTY_FRAME: &str = "(empty)";

/// Make one frame name safe for folded stacks (and for XML, which the SVG embeds it in):
/// - `;` becomes `；` (U+FF1B), so it no longer separates frames;
/// - control characters (line breaks, tabs, escape, DEL, C1) and the XML-forbidden U+FFFE and
///   U+FFFF are written as Rust escapes (`\n`, `\t`, `\u{1b}`): a line stays one line and the
///   SVG stays well-formed;
/// - leading and trailing whitespace is dropped (readers trim lines), and an empty result
///   becomes `(empty)`;
/// - a trailing ` 123` or ` 1.5` gets a no-break space, so readers do not take it for a second
///   (differential) count; a leading `# ` likewise, so the line is not read as a comment.
///
/// Text read from a process should already be decoded lossily (invalid UTF-8 as U+FFFD).
pub fn sanitize_frame(frame: &str) -> String {
    let mut out = escape_controls(&frame.trim().replace(';', SEMICOLON_STANDIN));
    if out.is_empty() {
        return EMPTY_FRAME.to_string();
    }
    if let Some(space) = out.rfind(' ') {
        if looks_like_count(&out[space + 1..]) {
            out.replace_range(space..space + 1, GLUE_SPACE.encode_utf8(&mut [0; 4]));
        }
    }
    if out.starts_with("# ") {
        out.replace_range(1..2, GLUE_SPACE.encode_utf8(&mut [0; 4]));
    }
    out
}

/// Write control characters (and the XML-forbidden U+FFFE, U+FFFF) as Rust escapes, so text
/// stays on one line and is legal in XML.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Would a folded-stack reader take this last word of a line for a sample count?
fn looks_like_count(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// The folded line prefix for a stack: sanitised frames joined by `;`.
fn folded_stack(stack: &Stack) -> String {
    let frames: Vec<String> = super::frames_or_placeholder(stack)
        .map(sanitize_frame)
        .collect();
    frames.join(";")
}

/// Folded stacks and their values, sorted by stack (so inferno need not sort
/// them again). Stacks that only differed in characters the sanitiser replaced are merged.
pub(super) fn folded_lines(profile: &Profile) -> Vec<(String, u64)> {
    let mut lines: BTreeMap<String, u64> = BTreeMap::new();
    for stack in &profile.stacks {
        let value = lines.entry(folded_stack(stack)).or_insert(0);
        *value = value.saturating_add(stack.value);
    }
    lines.into_iter().collect()
}

pub(super) fn render(profile: &Profile) -> String {
    let mut out = String::new();
    for (stack, value) in folded_lines(profile) {
        out.push_str(&stack);
        out.push(' ');
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out
}

/// Stacks read from folded text, and what was skipped.
#[derive(Debug, Default)]
pub struct ParsedCollapsed {
    pub stacks: Vec<Stack>,
    /// Lines that were neither blank, a `#` comment, nor `frames count`.
    pub skipped: usize,
    /// 1-based number of the first skipped line, to point a person at it.
    pub first_skipped_line: Option<usize>,
}

/// Read folded stacks (`frame;frame value` per line). Blank lines and `#` comments are ignored;
/// lines without a whole-number count, and differential lines (two counts), are skipped and
/// counted.
pub fn parse_collapsed(text: &str) -> ParsedCollapsed {
    let mut parsed = ParsedCollapsed::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(stack) => parsed.stacks.push(stack),
            None => {
                parsed.skipped += 1;
                parsed.first_skipped_line.get_or_insert(index + 1);
            }
        }
    }
    parsed
}

fn parse_line(line: &str) -> Option<Stack> {
    let (stack, count) = line.rsplit_once(|c: char| c.is_ascii_whitespace())?;
    let value: u64 = count.parse().ok()?;
    let stack = stack.trim_end();
    let differential = stack
        .rsplit_once(|c: char| c.is_ascii_whitespace())
        .is_some_and(|(_, word)| looks_like_count(word));
    if stack.is_empty() || differential {
        return None;
    }
    Some(Stack::new(stack.split(';'), value))
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_profile;
    use super::*;
    use crate::profile::Unit;

    #[test]
    fn sanitiser_keeps_plain_frames_and_defuses_special_ones() {
        assert_eq!(sanitize_frame("handle (app.py:12)"), "handle (app.py:12)");
        assert_eq!(sanitize_frame("a;b"), "a\u{ff1b}b");
        assert_eq!(sanitize_frame("two\nlines\there"), "two\\nlines\\there");
        assert_eq!(sanitize_frame("esc\u{1b}del\u{7f}"), "esc\\u{1b}del\\u{7f}");
        assert_eq!(sanitize_frame("  padded  "), "padded");
        assert_eq!(sanitize_frame(" \t "), "(empty)");
        assert_eq!(sanitize_frame("item 12"), "item\u{a0}12");
        assert_eq!(sanitize_frame("ratio 1.5"), "ratio\u{a0}1.5");
        assert_eq!(sanitize_frame("# note"), "#\u{a0}note");
        assert_eq!(sanitize_frame("bad \u{fffd} bytes"), "bad \u{fffd} bytes");
    }

    #[test]
    fn folded_lines_sum_to_the_total_and_parse_back() {
        let profile = sample_profile().merged();
        let text = render(&profile);
        let parsed = parse_collapsed(&text);
        assert_eq!(parsed.skipped, 0, "{text}");
        assert_eq!(text.lines().count(), parsed.stacks.len());
        let sum: u64 = parsed.stacks.iter().map(|s| s.value).sum();
        assert_eq!(sum, profile.total());
        for (stack, original) in parsed.stacks.iter().zip(&profile.stacks) {
            let expected: Vec<String> = original.frames.iter().map(|f| sanitize_frame(f)).collect();
            assert_eq!(stack.frames, expected);
            assert_eq!(stack.value, original.value);
        }
    }

    #[test]
    fn stacks_made_equal_by_sanitising_are_merged() {
        let mut p = Profile::new("t", "s", Unit::Objects);
        p.push(["a;b"], 1);
        p.push(["a\u{ff1b}b"], 2);
        p.push(Vec::<String>::new(), 3);
        assert_eq!(render(&p), "(no frames) 3\na\u{ff1b}b 3\n");
    }

    #[test]
    fn parser_skips_and_counts_what_it_cannot_read() {
        let text = "# comment\n\na;b 10\nno_count\na;b 1.5\na;b 5 7\n;c x\n  c;d\t4  \n";
        let parsed = parse_collapsed(text);
        assert_eq!(parsed.stacks.len(), 2);
        assert_eq!(parsed.stacks[1].frames, ["c", "d"]);
        assert_eq!(parsed.stacks[1].value, 4);
        assert_eq!(parsed.skipped, 4);
        assert_eq!(parsed.first_skipped_line, Some(4));
    }
}
