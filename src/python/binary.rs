//! Finding the CPython runtime in a target: which mapped ELF file holds `_PyRuntime` (the
//! executable, libpython, or a binary started through ld.so), where it is loaded, and the symbols
//! we need from it.

use crate::error::{Error, Result};
use crate::process::Target;
use goblin::elf::{program_header::PT_LOAD, Elf};
use rustc_hash::FxHashSet;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Symbols worth resolving. Data symbols of static types let us recognise builtin types by
/// address (robust on every build), the obmalloc/tracemalloc statics exist only in `.symtab`.
const WANTED: &[&str] = &[
    "_PyRuntime",
    "Py_Version",
    "PyType_Type",
    "PyBaseObject_Type",
    "PyList_Type",
    "PyDict_Type",
    "PySet_Type",
    "PyFrozenSet_Type",
    "PyTuple_Type",
    "PyUnicode_Type",
    "PyLong_Type",
    "PyBool_Type",
    "PyBytes_Type",
    "PyByteArray_Type",
    "PyFloat_Type",
    "PyCode_Type",
    "PyModule_Type",
    "PyFrame_Type",
    "PyGen_Type",
    "PyCoro_Type",
    "PyAsyncGen_Type",
    "PyFunction_Type",
    "PyCell_Type",
    "PyMethod_Type",
    "PyComplex_Type",
    "PyODict_Type",
    "PyMethodDescr_Type",
    "_PyNone_Type",
    "_Py_NoneStruct",
    "arenas",
    "maxarenas",
    "usedpools",
    "narenas_currently_allocated",
    "raw_allocated_blocks",
    "_PyMem_DebugMalloc",
    "_PyObject_Malloc",
    "_PyMem_RawMalloc",
    "interned",
    // live_tracing's safe point and the call it makes there (3.8–3.13): exported API.
    "PyEval_SaveThread",
    "PyRun_SimpleStringFlags",
    // tracemalloc (3.8–3.11): its tables are file-local statics.
    "_Py_tracemalloc_config",
    "tracemalloc_traces",
    "tracemalloc_domains",
    // Exported (`.dynsym`, so also on stripped builds): what tracemalloc's tables hold as hash,
    // compare and destroy functions, for finding them without the statics' names.
    "_Py_hashtable_hash_ptr",
    "_Py_hashtable_compare_direct",
    "_Py_hashtable_destroy",
];

#[derive(Debug, Clone)]
pub struct PythonBinary {
    /// The path as the target sees it.
    pub path: String,
    /// Where we opened it.
    pub host_path: PathBuf,
    /// Added to a symbol's value to get its address in the target.
    pub bias: u64,
    /// Resolved addresses in the target of the `WANTED` symbols present.
    pub symbols: HashMap<String, u64>,
    pub runtime: u64,
    pub runtime_found_by: &'static str,
    pub build_id: Option<Vec<u8>>,
    pub has_debug_info: bool,
    /// (address, size) in the target of .data and .bss: where static pointers live.
    pub data_sections: Vec<(u64, u64)>,
    /// (address, size) in the target of the `.PyRuntime` section (3.10+): `_PyRuntime` alone.
    pub runtime_section: Option<(u64, u64)>,
    /// File offset and size of .rodata, where the version text is (see `version_text`).
    rodata: Option<(u64, u64)>,
}

impl PythonBinary {
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }

    /// The version text in .rodata ("3.11.2"), the last resort before 3.11 where `Py_Version`
    /// is absent. Read only when asked: searching megabytes of strings is most of what finding
    /// the binary would otherwise cost.
    pub fn version_text(&self) -> Option<String> {
        let (offset, size) = self.rodata?;
        let file = std::fs::File::open(&self.host_path).ok()?;
        // SAFETY: a read-only private map of a regular file; we tolerate its contents changing.
        let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        find_version_text(map.get(start..end)?, &self.path)
    }

    /// Add symbols a separate debug file knows (see `debug_symbols`), keeping those we already
    /// have. Same link addresses, so the same bias applies.
    pub fn add_symbols(&mut self, link_values: &BTreeMap<String, u64>) {
        for (name, value) in link_values {
            self.symbols
                .entry(name.clone())
                .or_insert(value.wrapping_add(self.bias));
        }
    }
}

/// Link-time values of the `WANTED` symbols in a separate debug file (a stripped build's
/// `.symtab` lives there).
pub fn debug_symbols(debug_file: &std::path::Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let file = std::fs::File::open(debug_file)?;
    // SAFETY: read-only map of a regular file.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let elf = Elf::parse(&map)?;
    Ok(wanted_symbols(&elf).into_iter().collect())
}

/// Link-time values of the `WANTED` symbols an ELF defines (dynamic and static tables).
///
/// A Python binary's `.symtab` holds tens of thousands of names and we want forty: each name is
/// looked up once in a hash set, and only a name with a dot pays for the `.lto_priv.` check.
fn wanted_symbols(elf: &Elf) -> HashMap<String, u64> {
    static WANTED_SET: OnceLock<FxHashSet<&'static str>> = OnceLock::new();
    let wanted = WANTED_SET.get_or_init(|| WANTED.iter().copied().collect());
    let mut raw: HashMap<String, u64> = HashMap::new();
    for (syms, strtab) in [(&elf.dynsyms, &elf.dynstrtab), (&elf.syms, &elf.strtab)] {
        for sym in syms.iter() {
            if sym.st_value == 0 || sym.st_shndx == 0 {
                continue;
            }
            if let Some(name) = strtab.get_at(sym.st_name).and_then(base_name) {
                if let Some(&name) = wanted.get(name) {
                    raw.entry(name.to_string()).or_insert(sym.st_value);
                }
            }
        }
    }
    raw
}

/// A symbol's C name: LTO renames file-local statics `name.lto_priv.N` (Debian's builds); other
/// dotted names (`name.cold`, `name.isra.0`, `name.part.0`) are compiler clones, not data.
fn base_name(name: &str) -> Option<&str> {
    match name.split_once('.') {
        None => Some(name),
        Some((base, rest)) => rest.starts_with("lto_priv.").then_some(base),
    }
}

/// Mapped file paths, the likeliest homes of the runtime first.
fn candidate_paths(target: &Target) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for m in &target.maps {
        if let Some(p) = &m.path {
            if !seen.contains(p) && !p.starts_with("/dev/") && !p.starts_with("/memfd:") {
                seen.push(p.clone());
            }
        }
    }
    let score = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or(p);
        if name.starts_with("libpython") {
            0
        } else if name.starts_with("python") {
            1
        } else if p.contains("python") {
            2
        } else if name.starts_with("ld-") || name.starts_with("libc.") {
            9
        } else {
            5
        }
    };
    seen.sort_by_key(|p| score(p));
    seen
}

pub fn locate(target: &Target) -> Result<PythonBinary> {
    for path in candidate_paths(target) {
        let host = target.host_path(&path);
        let Ok(file) = std::fs::File::open(&host) else {
            continue;
        };
        // SAFETY: a read-only private map of a regular file; we tolerate its contents changing.
        let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
            continue;
        };
        let Ok(elf) = Elf::parse(&map) else {
            continue;
        };
        if let Some(found) = inspect(target, &path, host, &map, &elf) {
            return Ok(found);
        }
    }
    Err(Error::NotPython {
        pid: target.pid,
        exe: target.exe(),
    })
}

fn inspect(
    target: &Target,
    path: &str,
    host: PathBuf,
    data: &[u8],
    elf: &Elf,
) -> Option<PythonBinary> {
    let raw = wanted_symbols(elf);
    let section = |want: &str| {
        elf.section_headers
            .iter()
            .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(want))
    };
    let (runtime_vaddr, found_by) = match raw.get("_PyRuntime") {
        Some(v) => (*v, "symbol _PyRuntime"),
        None => (section(".PyRuntime")?.sh_addr, "section .PyRuntime"),
    };
    let bias = load_bias(target, path, elf)?;
    let has_debug_info = section(".debug_info").is_some();
    let build_id = build_id(elf, data);
    let rodata = section(".rodata").map(|sh| (sh.sh_offset, sh.sh_size));
    let range = |name: &str| section(name).map(|sh| (sh.sh_addr + bias, sh.sh_size));
    Some(PythonBinary {
        data_sections: [range(".data"), range(".bss")]
            .into_iter()
            .flatten()
            .collect(),
        runtime_section: range(".PyRuntime"),
        path: path.to_string(),
        host_path: host,
        bias,
        symbols: raw.into_iter().map(|(k, v)| (k, v + bias)).collect(),
        runtime: runtime_vaddr + bias,
        runtime_found_by: found_by,
        build_id,
        has_debug_info,
        rodata,
    })
}

/// Load bias of a mapped ELF: 0 for a non-PIE executable, else where its first PT_LOAD landed.
fn load_bias(target: &Target, path: &str, elf: &Elf) -> Option<u64> {
    if elf.header.e_type == goblin::elf::header::ET_EXEC {
        return Some(0);
    }
    let first = elf
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .min_by_key(|ph| ph.p_offset)?;
    let page = 4096u64;
    let file_off = first.p_offset & !(page - 1);
    let vaddr = first.p_vaddr & !(page - 1);
    let m = target
        .maps
        .iter()
        .filter(|m| m.path.as_deref() == Some(path) && m.offset == file_off)
        .min_by_key(|m| m.start)?;
    m.start.checked_sub(vaddr)
}

fn build_id(elf: &Elf, data: &[u8]) -> Option<Vec<u8>> {
    let notes = elf.iter_note_sections(data, Some(".note.gnu.build-id"))?;
    for note in notes.flatten() {
        if note.n_type == goblin::elf::note::NT_GNU_BUILD_ID {
            return Some(note.desc.to_vec());
        }
    }
    None
}

/// The interpreter's version string ("3.8.18") among the NUL-separated strings of .rodata,
/// preferring one whose minor version matches the file name (python3.8, libpython3.8.so).
fn find_version_text(rodata: &[u8], path: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let hint = name
        .find("python3.")
        .map(|i| &name[i + 6..])
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect::<String>()
        })
        .map(|s| s.trim_end_matches('.').to_string());
    let mut found: Vec<String> = Vec::new();
    for s in rodata.split(|&b| b == 0) {
        if s.len() < 5 || s.len() > 16 || !s.starts_with(b"3.") {
            continue;
        }
        let Ok(text) = std::str::from_utf8(s) else {
            continue;
        };
        let mut parts = text.splitn(3, '.');
        let (_, minor, rest) = (parts.next(), parts.next(), parts.next());
        let ok_minor =
            minor.is_some_and(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()));
        let ok_rest = rest.is_some_and(|r| {
            r.chars().next().is_some_and(|c| c.is_ascii_digit())
                && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '+')
        });
        if ok_minor && ok_rest {
            found.push(text.to_string());
        }
    }
    if let Some(h) = hint.filter(|h| h.len() > 2) {
        let prefix = format!("{h}.");
        if let Some(f) = found.iter().find(|f| f.starts_with(&prefix)) {
            return Some(f.clone());
        }
        // The literal may be tail-merged into a longer string by the linker: look for the
        // prefix anywhere and take the most frequent micro version after it.
        let mut counts: std::collections::HashMap<String, usize> = Default::default();
        let p = prefix.as_bytes();
        for i in memchr::memmem::find_iter(rodata, p) {
            let before_ok = i == 0 || !(rodata[i - 1].is_ascii_digit() || rodata[i - 1] == b'.');
            if before_ok {
                let micro: String = rodata[i + p.len()..]
                    .iter()
                    .take(3)
                    .take_while(|c| c.is_ascii_digit())
                    .map(|&c| c as char)
                    .collect();
                if !micro.is_empty() {
                    *counts.entry(format!("{prefix}{micro}")).or_default() += 1;
                }
            }
        }
        if let Some((v, _)) = counts.into_iter().max_by_key(|(v, n)| (*n, v.clone())) {
            return Some(v);
        }
        return Some(format!("{h}.0"));
    }
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names() {
        assert_eq!(base_name("arenas"), Some("arenas"));
        assert_eq!(base_name("arenas.lto_priv.0"), Some("arenas"));
        assert_eq!(base_name("interned.lto_priv.12"), Some("interned"));
        assert_eq!(base_name("usedpools.cold"), None);
        assert_eq!(base_name("arenas.isra.0"), None);
        // The lookup compares the part before the first dot: no wanted name may have one.
        assert!(WANTED.iter().all(|w| !w.contains('.')));
    }

    #[test]
    fn version_text() {
        let path = "/usr/bin/python3.9";
        assert_eq!(
            find_version_text(b"x\x003.9.18\x00y", path).as_deref(),
            Some("3.9.18")
        );
        // Tail-merged into longer strings: the most frequent micro version after "3.9.".
        let merged = b"\x00ver 3.9.18+\x00at 3.9.18 (main)\x00re 3.9.1\x0013.9.2\x00";
        assert_eq!(find_version_text(merged, path).as_deref(), Some("3.9.18"));
        assert_eq!(find_version_text(b"none", path).as_deref(), Some("3.9.0"));
    }
}
