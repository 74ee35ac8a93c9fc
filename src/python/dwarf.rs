//! DWARF: when the binary carries debug info, or its build-id debug file is installed, the struct
//! offsets come from the compiler itself and override the tables. This is what makes patched
//! distro builds and patch releases that moved fields (3.14.x) right without new table rows.

use super::binary::PythonBinary;
use super::layout::{Layout, ObmallocState};
use crate::process::Target;
use gimli::{AttributeValue, EndianSlice, LittleEndian};
use goblin::elf::Elf;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

type R<'a> = EndianSlice<'a, LittleEndian>;

/// Struct tags we read (C struct names, not typedefs), and the members we want from each.
/// A dotted member ("interpreters.head") is a member of a nested struct.
const WANTED: &[(&str, &[&str])] = &[
    (
        "pyruntimestate",
        &["interpreters.head", "gc", "tracemalloc"],
    ),
    (
        "_is",
        &[
            "next",
            "threads.head",
            "tstate_head",
            "gc",
            "modules",
            "imports.modules",
            "sysdict",
            "builtins",
            "obmalloc",
            "mimalloc",
        ],
    ),
    (
        "_gc_runtime_state",
        &[
            "enabled",
            "generations",
            "young",
            "generation0",
            "permanent_generation",
            "collecting",
            "generation_stats",
            "garbage",
        ],
    ),
    (
        "_heaptypeobject",
        &["ht_name", "ht_qualname", "ht_cached_keys"],
    ),
    // Free-threaded builds only (see `wanted`): where a thread's mimalloc heaps are.
    ("_PyThreadStateImpl", &["mimalloc"]),
];

/// The structs worth looking for in this build: default builds have no mimalloc state, and a
/// struct that is never found would make us scan every compilation unit.
fn wanted(
    free_threaded: bool,
) -> impl Iterator<Item = &'static (&'static str, &'static [&'static str])> {
    WANTED
        .iter()
        .filter(move |(tag, _)| free_threaded || *tag != "_PyThreadStateImpl")
}

/// Member offsets and struct sizes found, keyed "struct.member" and "struct.__size__". Ordered,
/// so that the layout cache's file is stable.
pub type Offsets = BTreeMap<String, u64>;

/// The struct offsets the DWARF of `path` (the binary itself or its debug file) gives.
pub fn read_file(path: &Path, free_threaded: bool) -> anyhow::Result<Offsets> {
    let file = std::fs::File::open(path)?;
    // SAFETY: read-only map of a regular file.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    read_offsets(&map, free_threaded)
}

/// The file holding the binary's debug info: itself, or its build-id debug file.
pub fn debug_file(
    binary: &PythonBinary,
    target: &Target,
    extra_dirs: &[PathBuf],
) -> Option<PathBuf> {
    if binary.has_debug_info {
        return Some(binary.host_path.clone());
    }
    let id = binary.build_id.as_ref()?;
    if id.len() < 2 {
        return None;
    }
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let rel = format!(".build-id/{}/{}.debug", &hex[..2], &hex[2..]);
    let mut dirs: Vec<PathBuf> = extra_dirs.to_vec();
    // A relocated tree (/opt/x/usr/bin/python3 with /opt/x/usr/lib/debug) keeps its debug files
    // beside it; a container keeps them under its own root.
    for anc in Path::new(&binary.host_path).ancestors().skip(1) {
        dirs.push(anc.join("lib/debug"));
        dirs.push(anc.join("usr/lib/debug"));
    }
    dirs.push(target.host_path("/usr/lib/debug"));
    dirs.push(PathBuf::from("/usr/lib/debug"));
    dirs.into_iter().map(|d| d.join(&rel)).find(|p| p.is_file())
}

fn section_data<'a>(elf: &Elf, data: &'a [u8], name: &str) -> anyhow::Result<Cow<'a, [u8]>> {
    let Some(sh) = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(name))
    else {
        return Ok(Cow::Borrowed(&[]));
    };
    if sh.sh_type == goblin::elf::section_header::SHT_NOBITS {
        return Ok(Cow::Borrowed(&[]));
    }
    let start = sh.sh_offset as usize;
    let raw = data
        .get(start..start.saturating_add(sh.sh_size as usize))
        .ok_or_else(|| anyhow::anyhow!("section {name} is truncated"))?;
    if sh.sh_flags & u64::from(goblin::elf::section_header::SHF_COMPRESSED) == 0 {
        return Ok(Cow::Borrowed(raw));
    }
    // Elf64_Chdr: type u32, reserved u32, size u64, addralign u64; then the stream.
    anyhow::ensure!(raw.len() >= 24, "compressed section {name} too short");
    let ch_type = u32::from_le_bytes(raw[0..4].try_into()?);
    let size = u64::from_le_bytes(raw[8..16].try_into()?) as usize;
    anyhow::ensure!(
        ch_type == 1,
        "section {name} uses compression {ch_type}, not zlib"
    );
    anyhow::ensure!(size < (1 << 30), "section {name} claims {size} bytes");
    let mut out = Vec::with_capacity(size);
    use std::io::Read;
    flate2::read::ZlibDecoder::new(&raw[24..])
        .take(size as u64)
        .read_to_end(&mut out)?;
    Ok(Cow::Owned(out))
}

pub fn read_offsets(data: &[u8], free_threaded: bool) -> anyhow::Result<Offsets> {
    let elf = Elf::parse(data)?;
    let mut owned: HashMap<&'static str, Cow<[u8]>> = HashMap::new();
    for name in [
        ".debug_info",
        ".debug_abbrev",
        ".debug_str",
        ".debug_line_str",
        ".debug_str_offsets",
        // Unit::new reads the line program header and base attributes: these must be present.
        ".debug_line",
        ".debug_addr",
        ".debug_rnglists",
        ".debug_ranges",
    ] {
        owned.insert(name, section_data(&elf, data, name)?);
    }
    let load = |id: gimli::SectionId| -> Result<R, gimli::Error> {
        let d = owned.get(id.name()).map(|c| c.as_ref()).unwrap_or(&[]);
        Ok(EndianSlice::new(d, LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load)?;
    let mut found = Offsets::new();
    let mut units = dwarf.units();
    let mut done: Vec<&str> = Vec::new();
    let want: Vec<_> = wanted(free_threaded).collect();
    while let Some(header) = units.next()? {
        let unit = dwarf.unit(header)?;
        scan_unit(&dwarf, &unit, &want, &mut found, &mut done)?;
        if done.len() == want.len() {
            break;
        }
    }
    Ok(found)
}

fn attr_name<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &gimli::Unit<R<'a>>,
    e: &gimli::DebuggingInformationEntry<R<'a>>,
) -> Option<String> {
    let v = e.attr_value(gimli::DW_AT_name).ok()??;
    let s = dwarf.attr_string(unit, v).ok()?;
    Some(s.to_string_lossy().into_owned())
}

fn scan_unit<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &gimli::Unit<R<'a>>,
    want: &[&'static (&'static str, &'static [&'static str])],
    found: &mut Offsets,
    done: &mut Vec<&'static str>,
) -> anyhow::Result<()> {
    // The structs we want are declared at file scope: walking only the unit's top level skips
    // every function body's locals and scopes, most of a unit's entries.
    let mut tree = unit.entries_tree(None)?;
    let root = tree.root()?;
    let mut top = root.children();
    while let Some(node) = top.next()? {
        let e = node.entry();
        if e.tag() != gimli::DW_TAG_structure_type
            || e.attr_value(gimli::DW_AT_declaration)?.is_some()
        {
            continue;
        }
        let Some(name) = attr_name(dwarf, unit, e) else {
            continue;
        };
        let Some((tag, members)) = want.iter().find(|(t, _)| *t == name) else {
            continue;
        };
        if done.contains(tag) {
            continue;
        }
        let Some(size) = e
            .attr_value(gimli::DW_AT_byte_size)?
            .and_then(|v| v.udata_value())
        else {
            continue;
        };
        let all = struct_members(dwarf, unit, e.offset(), 2)?;
        found.insert(format!("{tag}.__size__"), size);
        for m in *members {
            if let Some(off) = all.get(*m) {
                found.insert(format!("{tag}.{m}"), *off);
            }
        }
        done.push(tag);
    }
    Ok(())
}

/// Members of the struct at `offset` (following nested struct members `depth` levels deep).
fn struct_members<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &gimli::Unit<R<'a>>,
    offset: gimli::UnitOffset,
    depth: u32,
) -> anyhow::Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let mut tree = unit.entries_tree(Some(offset))?;
    let root = tree.root()?;
    let mut children = root.children();
    while let Some(child) = children.next()? {
        let e = child.entry();
        if e.tag() != gimli::DW_TAG_member {
            continue;
        }
        let Some(off) = e
            .attr_value(gimli::DW_AT_data_member_location)?
            .and_then(|v| v.udata_value())
        else {
            continue;
        };
        let name = attr_name(dwarf, unit, e);
        if let Some(n) = &name {
            out.insert(n.clone(), off);
        }
        if depth == 0 {
            continue;
        }
        if let Some(inner) = member_struct(unit, e)? {
            for (k, v) in struct_members(dwarf, unit, inner, depth - 1)? {
                match &name {
                    Some(n) => out.insert(format!("{n}.{k}"), off + v),
                    // Anonymous struct/union members are reached by their inner names.
                    None => out.insert(k, off + v),
                };
            }
        }
    }
    Ok(out)
}

/// The struct type of a member, through typedefs and qualifiers.
fn member_struct<'a>(
    unit: &gimli::Unit<R<'a>>,
    e: &gimli::DebuggingInformationEntry<R<'a>>,
) -> anyhow::Result<Option<gimli::UnitOffset>> {
    let mut ty = e.attr_value(gimli::DW_AT_type)?;
    for _ in 0..8 {
        let Some(AttributeValue::UnitRef(off)) = ty else {
            return Ok(None);
        };
        let t = unit.entry(off)?;
        match t.tag() {
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => return Ok(Some(off)),
            gimli::DW_TAG_typedef | gimli::DW_TAG_const_type | gimli::DW_TAG_volatile_type => {
                ty = t.attr_value(gimli::DW_AT_type)?
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Let what DWARF found override the table's (and debug offsets') values.
pub fn override_layout(o: &Offsets, layout: &mut Layout) {
    let get = |k: &str| o.get(k).copied();
    if let Some(v) = get("pyruntimestate.interpreters.head") {
        layout.runtime.interpreters_head = v;
    }
    if layout.runtime.gc.is_some() {
        if let Some(v) = get("pyruntimestate.gc") {
            layout.runtime.gc = Some(v);
        }
    }
    if let Some(v) = get("_is.next") {
        layout.interp.next = v;
    }
    if let Some(v) = get("_is.threads.head").or(get("_is.tstate_head")) {
        layout.interp.threads_head = v;
    }
    if layout.runtime.gc.is_none() {
        if let Some(v) = get("_is.gc") {
            layout.interp.gc = Some(v);
        }
    }
    if let Some(v) = get("_is.imports.modules").or(get("_is.modules")) {
        layout.interp.modules = v;
    }
    if let Some(v) = get("_is.sysdict") {
        layout.interp.sysdict = v;
    }
    if let Some(v) = get("_is.builtins") {
        layout.interp.builtins = v;
    }
    if let Some(v) = get("_is.obmalloc") {
        layout.interp.obmalloc = match layout.interp.obmalloc {
            ObmallocState::Embedded(_) => ObmallocState::Embedded(v),
            ObmallocState::Pointer(_) => ObmallocState::Pointer(v),
            s => s,
        };
    }
    let g = &mut layout.gc;
    if let Some(v) = get("_gc_runtime_state.__size__") {
        g.size = v;
        // Known struct: a missing `generation0` member really is missing (3.14.0–3.14.4).
        g.generation0 = get("_gc_runtime_state.generation0");
    }
    if let Some(v) = get("_gc_runtime_state.generations").or(get("_gc_runtime_state.young")) {
        g.generations = v;
    }
    if let Some(v) = get("_gc_runtime_state.permanent_generation") {
        g.permanent = v;
    }
    if let Some(v) = get("_gc_runtime_state.collecting") {
        g.collecting = v;
    }
    if let Some(v) = get("_gc_runtime_state.garbage") {
        g.garbage = v;
    }
    if let Some(v) = get("_gc_runtime_state.enabled") {
        g.enabled = v;
    }
    if let Some(m) = layout.mimalloc.as_mut() {
        if let Some(v) = get("_PyThreadStateImpl.mimalloc") {
            m.tstate_mimalloc = v;
        }
        if let Some(v) = get("_is.mimalloc") {
            m.interp_mimalloc = Some(v);
        }
    } else if let Some(v) = get("_PyThreadStateImpl.mimalloc") {
        // A free-threaded minor version the tables do not know yet.
        layout.mimalloc = Some(super::layout::MimallocLayout {
            tstate_mimalloc: v,
            tstate_next: 8,
            interp_mimalloc: get("_is.mimalloc"),
        });
    }
    let t = &mut layout.type_;
    if let Some(v) = get("_heaptypeobject.__size__") {
        t.heap_type_size = v;
    }
    if let Some(v) = get("_heaptypeobject.ht_name") {
        t.ht_name = v;
    }
    if let Some(v) = get("_heaptypeobject.ht_qualname") {
        t.ht_qualname = v;
    }
    if let Some(v) = get("_heaptypeobject.ht_cached_keys") {
        t.ht_cached_keys = v;
    }
}
