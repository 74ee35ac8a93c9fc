//! The frame string convention `FUNCTION (FILE:LINE)`, shared by producers (which format it)
//! and the structured formats (which split it into function, file and line).
//!
//! The split looks for the first ` (`: Python function names (identifiers, `<module>`,
//! `A.<locals>.f`) never contain one, while file paths may.

/// A frame split into its parts. A frame that does not follow the convention is all function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo<'a> {
    pub function: &'a str,
    pub file: Option<&'a str>,
    /// The line being executed in that frame; 0 when unknown.
    pub line: u32,
}

impl<'a> FrameInfo<'a> {
    pub fn parse(frame: &'a str) -> FrameInfo<'a> {
        Self::split(frame).unwrap_or(FrameInfo {
            function: frame,
            file: None,
            line: 0,
        })
    }

    fn split(frame: &'a str) -> Option<FrameInfo<'a>> {
        let inner = frame.strip_suffix(')')?;
        let open = inner.find(" (")?;
        let function = &inner[..open];
        let (file, line) = inner[open + 2..].rsplit_once(':')?;
        if function.is_empty() || file.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(FrameInfo {
            function,
            file: Some(file),
            line: line.parse().ok()?,
        })
    }
}

/// Format a Python frame by the convention: `handle (app/views.py:12)`.
#[allow(dead_code)] // only the unit tests call it (see `render::profile`)
pub fn python_frame(function: &str, file: &str, line: u32) -> String {
    format!("{function} ({file}:{line})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_frames_round_trip() {
        let f = python_frame("A.<locals>.load", "/srv/my app (v2)/db.py", 77);
        assert_eq!(
            FrameInfo::parse(&f),
            FrameInfo {
                function: "A.<locals>.load",
                file: Some("/srv/my app (v2)/db.py"),
                line: 77
            }
        );
    }

    #[test]
    fn other_strings_are_all_function() {
        for s in [
            "dict",
            "__main__.app_cache",
            "['users']",
            "f (no line)",
            "f (a.py:)",
            "f (a.py:12x)",
            " (a.py:3)",
            "f (:3)",
            "f (a.py:99999999999)",
            "",
        ] {
            let info = FrameInfo::parse(s);
            assert_eq!((info.function, info.file, info.line), (s, None, 0), "{s:?}");
        }
    }
}
