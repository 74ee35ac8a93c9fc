//! How a frame's file is shown: relative to the `sys.path` entry it was imported from, as
//! py-spy shows it (`render (leaky.py:50)`, `views (django/core/handlers/base.py:197)`), or
//! whole with `--full-filenames`.
//!
//! Whole absolute paths made flamegraph labels unreadable: a frame box is a few dozen pixels
//! wide, and `main (/home/me/src/project/...` is cut before the function's file is seen. The
//! module path a person imports by is the part that says which code it is.
//!
//! `sys.path` is read from the target's own `sys` dict (`interp->sysdict`), so the result is
//! what that process imports by, virtualenvs and `PYTHONPATH` included. Labels stay unique: when
//! two different files would show the same short name (`a/util.py` under two entries), the later
//! one gets more of its path, so no flamegraph merges two files into one box and a machine
//! reader can always map a label back to its one full path (`FileNames::full_paths`).

use crate::heap::frames::stacks::Frame;
use crate::heap::objects::pyobj::{dict_get_str, read_str};
use crate::heap::objects::types::TypeTable;
use crate::process::{Bytes, View};
use crate::python::Python;
use std::collections::{BTreeMap, HashMap};

/// Most `sys.path` entries read (a corrupted list cannot make us read forever).
const MAX_ENTRIES: u64 = 1024;
/// Longest entry read.
const MAX_ENTRY_CHARS: u64 = 4096;

/// The first interpreter's `sys.path`: absolute entries only. None when it cannot be read (a
/// core cut short, an interpreter still starting, a `sys.path` replaced by something that is
/// not a list of str).
pub fn read_sys_path(view: &mut View, py: &Python, types: &mut TypeTable) -> Option<Vec<String>> {
    let l = &py.layout;
    let interp = *py.interpreters.first()?;
    let sysdict = view
        .u64(interp.wrapping_add(l.interp.sysdict))
        .filter(|&d| d != 0)?;
    if type_name(view, py, types, sysdict)? != "dict" {
        return None;
    }
    let list = dict_get_str(view, l, sysdict, "path")?;
    if type_name(view, py, types, list)? != "list" {
        return None;
    }
    let head = view.get(list, (l.list_items + 8) as usize).ok()?.to_vec();
    let n = head.u64_at(l.ob_size as usize);
    if n > MAX_ENTRIES {
        return None;
    }
    let items = head.u64_at(l.list_items as usize);
    let ptrs: Vec<u64> = view
        .get(items, (n * 8) as usize)
        .ok()?
        .chunks_exact(8)
        .map(|w| w.u64_at(0))
        .collect();
    let mut out = Vec::new();
    for p in ptrs {
        if type_name(view, py, types, p).as_deref() != Some("str") {
            continue;
        }
        if let Some(s) = read_str(view, l, p, MAX_ENTRY_CHARS) {
            if s.starts_with('/') {
                out.push(s);
            }
        }
    }
    Some(out)
}

fn type_name(view: &mut View, py: &Python, types: &mut TypeTable, obj: u64) -> Option<String> {
    let l = &py.layout;
    let tp = view.u64(obj.wrapping_add(l.ob_type))?;
    types.get(view, l, tp).map(|t| t.name.to_string())
}

/// Turns full file names into the labels shown, and remembers which label stands for which
/// file.
#[derive(Debug, Clone, Default)]
pub struct FileNames {
    /// `sys.path` entries, without a trailing slash, longest first (the longest entry that
    /// contains a file is the one it was imported from: site-packages inside a prefix).
    roots: Vec<String>,
    /// `--full-filenames`: show every path whole.
    full: bool,
    /// Label → the full file name it stands for.
    taken: HashMap<String, String>,
    /// Full file name → its label (a file is shortened once).
    labels: HashMap<String, String>,
}

impl FileNames {
    /// `sys_path`: the target's, or None where it is not known (see `short_form`).
    pub fn new(sys_path: Option<Vec<String>>, full: bool) -> FileNames {
        let mut roots: Vec<String> = sys_path
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        roots.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        roots.dedup();
        FileNames {
            roots,
            full,
            ..FileNames::default()
        }
    }

    /// Paths shown whole (`--full-filenames`, or where no shortening is wanted).
    pub fn whole() -> FileNames {
        FileNames::new(None, true)
    }

    /// Read the target's `sys.path` and shorten by it (unless `full`).
    pub fn of_target(view: &mut View, py: &Python, types: &mut TypeTable, full: bool) -> FileNames {
        if full {
            return FileNames::whole();
        }
        FileNames::new(read_sys_path(view, py, types), false)
    }

    /// The label of a file: relative to the longest `sys.path` entry holding it, else its short
    /// form; lengthened until no other file has it.
    pub fn file(&mut self, file: &str) -> String {
        if self.full {
            return file.to_string();
        }
        if let Some(label) = self.labels.get(file) {
            return label.clone();
        }
        let first = self.relative(file).unwrap_or_else(|| short_form(file));
        let mut label = first.to_string();
        // A label another file has already: take one more directory each time, up to whole.
        let mut start = file.len() - first.len();
        while self.taken.get(&label).is_some_and(|f| f != file) {
            match file[..start.saturating_sub(1)].rfind('/') {
                Some(slash) if start > 0 => {
                    start = slash + 1;
                    label = file[start..].to_string();
                }
                _ => {
                    label = file.to_string();
                    break;
                }
            }
        }
        self.taken.insert(label.clone(), file.to_string());
        self.labels.insert(file.to_string(), label.clone());
        label
    }

    /// `name (label:line)`: a frame as every output shows it.
    pub fn frame(&mut self, f: &Frame) -> String {
        let file = self.file(&f.file);
        format!("{} ({}:{})", f.name, file, f.line)
    }

    /// Every label that is not its file's full name, with that full name: what a machine
    /// reader (JSON, speedscope's and pprof's file fields) needs to find the file.
    pub fn full_paths(&self) -> BTreeMap<String, String> {
        self.taken
            .iter()
            .filter(|(label, file)| label != file)
            .map(|(l, f)| (l.clone(), f.clone()))
            .collect()
    }

    fn relative<'a>(&self, file: &'a str) -> Option<&'a str> {
        self.roots.iter().find_map(|root| {
            file.strip_prefix(root.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|rest| !rest.is_empty())
        })
    }
}

/// A file no `sys.path` entry holds, or any file when `sys.path` is not known (a core or a heap
/// dump read without it, an interpreter whose `sys` could not be read): its base name, with its
/// directory when the base name alone says nothing (`__init__.py`, `__main__.py`). Not the
/// whole path: the point is a label that fits its box; uniqueness is `FileNames::file`'s job.
/// Names that are not paths (`<frozen importlib._bootstrap>`, `<string>`) stay as they are.
fn short_form(file: &str) -> &str {
    if !file.starts_with('/') {
        return file;
    }
    let Some(slash) = file.rfind('/') else {
        return file;
    };
    let base = &file[slash + 1..];
    if base.is_empty() {
        return file;
    }
    if base == "__init__.py" || base == "__main__.py" {
        if let Some(parent) = file[..slash].rfind('/') {
            if parent + 1 < slash {
                return &file[parent + 1..];
            }
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> FileNames {
        FileNames::new(
            Some(vec![
                "/srv/demo".into(),
                "/usr/lib/python3.12".into(),
                "/srv/venv/lib/python3.12/site-packages/".into(),
                "/srv/venv".into(),
            ]),
            false,
        )
    }

    #[test]
    fn relative_to_the_longest_entry() {
        let mut n = names();
        assert_eq!(n.file("/srv/demo/leaky.py"), "leaky.py");
        assert_eq!(
            n.file("/srv/venv/lib/python3.12/site-packages/django/core/handlers/base.py"),
            "django/core/handlers/base.py"
        );
        assert_eq!(
            n.file("/usr/lib/python3.12/json/decoder.py"),
            "json/decoder.py"
        );
        assert_eq!(
            n.file("<frozen importlib._bootstrap>"),
            "<frozen importlib._bootstrap>"
        );
        // Outside every entry: the short form.
        assert_eq!(n.file("/opt/tools/run.py"), "run.py");
        // A prefix that is not a directory boundary does not count.
        assert_eq!(n.file("/srv/demo2/x.py"), "x.py");
    }

    #[test]
    fn labels_stay_unique() {
        let mut n = names();
        assert_eq!(n.file("/srv/demo/util.py"), "util.py");
        assert_eq!(n.file("/opt/other/util.py"), "other/util.py");
        assert_eq!(n.file("/util.py"), "/util.py");
        assert_eq!(n.file("/srv/demo/util.py"), "util.py");
        let full = n.full_paths();
        assert_eq!(full["util.py"], "/srv/demo/util.py");
        assert_eq!(full["other/util.py"], "/opt/other/util.py");
        assert!(!full.contains_key("/util.py"));
    }

    #[test]
    fn without_sys_path_and_whole() {
        let mut n = FileNames::new(None, false);
        assert_eq!(n.file("/a/b/pkg/__init__.py"), "pkg/__init__.py");
        assert_eq!(n.file("/a/b/leaky.py"), "leaky.py");
        assert_eq!(n.file("rel/x.py"), "rel/x.py");
        assert_eq!(n.file("/"), "/");
        let mut w = FileNames::whole();
        assert_eq!(w.file("/a/b/leaky.py"), "/a/b/leaky.py");
        assert!(w.full_paths().is_empty());
        let f = Frame {
            name: "render".into(),
            file: "/srv/demo/leaky.py".into(),
            line: 50,
            first_line: 40,
        };
        assert_eq!(names().frame(&f), "render (leaky.py:50)");
    }
}
