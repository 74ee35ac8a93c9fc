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

/// A section's bytes: borrowed from the file, or a zlib stream inflated as far as asked
/// (`SHF_COMPRESSED`, as Debian ships its debug files). The structs we want are usually declared
/// in the first half of `.debug_info`: inflating only what the scan reaches halves the cost.
enum Section<'a> {
    Plain(&'a [u8]),
    Zlib {
        stream: &'a [u8],
        out: Vec<u8>,
        size: usize,
        inflater: flate2::Decompress,
    },
}

/// How much more to inflate at a time: a few units' worth.
const INFLATE_STEP: usize = 1 << 20;

impl<'a> Section<'a> {
    fn open(elf: &Elf, data: &'a [u8], name: &str) -> anyhow::Result<Section<'a>> {
        let Some(sh) = elf
            .section_headers
            .iter()
            .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(name))
        else {
            return Ok(Section::Plain(&[]));
        };
        if sh.sh_type == goblin::elf::section_header::SHT_NOBITS {
            return Ok(Section::Plain(&[]));
        }
        let start = sh.sh_offset as usize;
        let raw = data
            .get(start..start.saturating_add(sh.sh_size as usize))
            .ok_or_else(|| anyhow::anyhow!("section {name} is truncated"))?;
        if sh.sh_flags & u64::from(goblin::elf::section_header::SHF_COMPRESSED) == 0 {
            return Ok(Section::Plain(raw));
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
        Ok(Section::Zlib {
            stream: &raw[24..],
            out: Vec::new(),
            size,
            inflater: flate2::Decompress::new(true),
        })
    }

    /// Inflate until at least `len` bytes are available (or the section ends).
    fn ensure(&mut self, len: usize) -> anyhow::Result<()> {
        let Section::Zlib {
            stream,
            out,
            size,
            inflater,
        } = self
        else {
            return Ok(());
        };
        while out.len() < len.min(*size) {
            let have = out.len();
            let want = (len.max(have + INFLATE_STEP)).min(*size);
            out.resize(want, 0);
            let consumed = inflater.total_in() as usize;
            let before = inflater.total_out();
            let status = inflater.decompress(
                stream.get(consumed..).unwrap_or(&[]),
                &mut out[have..],
                flate2::FlushDecompress::None,
            )?;
            let got = (inflater.total_out() - before) as usize;
            out.truncate(have + got);
            if got == 0 || status == flate2::Status::StreamEnd {
                // The stream ended (or stalled) short of what the header claimed.
                *size = out.len();
            }
        }
        Ok(())
    }

    /// Everything, inflated.
    fn whole(mut self) -> anyhow::Result<Cow<'a, [u8]>> {
        self.ensure(usize::MAX)?;
        Ok(match self {
            Section::Plain(b) => Cow::Borrowed(b),
            Section::Zlib { out, .. } => Cow::Owned(out),
        })
    }

    /// What is available so far.
    fn bytes(&self) -> &[u8] {
        match self {
            Section::Plain(b) => b,
            Section::Zlib { out, .. } => out,
        }
    }
}

pub fn read_offsets(data: &[u8], free_threaded: bool) -> anyhow::Result<Offsets> {
    let elf = Elf::parse(data)?;
    // Names and struct members only: no line programs, ranges or addresses (see `unit`).
    let mut owned: HashMap<&'static str, Cow<[u8]>> = HashMap::new();
    for name in [
        ".debug_abbrev",
        ".debug_str",
        ".debug_line_str",
        ".debug_str_offsets",
    ] {
        owned.insert(name, Section::open(&elf, data, name)?.whole()?);
    }
    let mut info = Section::open(&elf, data, ".debug_info")?;
    let mut found = Offsets::new();
    let mut done: Vec<&str> = Vec::new();
    let want: Vec<_> = wanted(free_threaded).collect();
    let (mut offset, mut units) = (0usize, 0usize);
    while done.len() < want.len() {
        // The unit's length: 4 bytes, or 0xffffffff and 8 bytes (64-bit DWARF).
        info.ensure(offset.saturating_add(12))?;
        let Some(head) = info.bytes().get(offset..offset + 12) else {
            break;
        };
        let length = match u32::from_le_bytes(head[..4].try_into()?) {
            0xffff_ffff => u64::from_le_bytes(head[4..12].try_into()?).saturating_add(12),
            n => u64::from(n) + 4,
        };
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| offset.checked_add(l))
            .ok_or_else(|| anyhow::anyhow!("DWARF unit at {offset:#x} claims {length} bytes"))?;
        info.ensure(end)?;
        let load = |id: gimli::SectionId| -> Result<R, gimli::Error> {
            let d = match id {
                gimli::SectionId::DebugInfo => info.bytes(),
                _ => owned.get(id.name()).map(|c| c.as_ref()).unwrap_or(&[]),
            };
            Ok(EndianSlice::new(d, LittleEndian))
        };
        let dwarf = gimli::Dwarf::load(load)?;
        let header = dwarf
            .debug_info
            .header_from_offset(gimli::DebugInfoOffset(offset))?;
        let unit = unit(&dwarf, header)?;
        scan_unit(&dwarf, &unit, &want, &mut found, &mut done)?;
        offset = end;
        units += 1;
    }
    log::debug!(
        "DWARF: {units} units, {offset} bytes of .debug_info scanned; {} of {} structs found",
        done.len(),
        want.len()
    );
    Ok(found)
}

/// A unit for reading type entries only. `Unit::new` also parses the line program header
/// and resolves the unit's base address, which would need `.debug_line` and `.debug_addr`
/// (inflating `.debug_line` alone cost as much as scanning the units); only the base of the
/// string offsets (`DW_FORM_strx` names, clang) matters here.
fn unit<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    header: gimli::UnitHeader<R<'a>>,
) -> gimli::Result<gimli::Unit<R<'a>>> {
    let abbreviations = dwarf.abbreviations(&header)?;
    let file = gimli::DwarfFileType::Main;
    let encoding = header.encoding();
    let mut str_offsets_base =
        gimli::DebugStrOffsetsBase::default_for_encoding_and_file(encoding, file);
    {
        let mut cursor = header.entries(&abbreviations);
        if let Some((_, root)) = cursor.next_dfs()? {
            if let Some(AttributeValue::DebugStrOffsetsBase(base)) =
                root.attr_value(gimli::DW_AT_str_offsets_base)?
            {
                str_offsets_base = base;
            }
        }
    }
    Ok(gimli::Unit {
        header,
        abbreviations,
        name: None,
        comp_dir: None,
        low_pc: 0,
        str_offsets_base,
        addr_base: gimli::DebugAddrBase(0),
        loclists_base: gimli::DebugLocListsBase::default_for_encoding_and_file(encoding, file),
        rnglists_base: gimli::DebugRngListsBase::default_for_encoding_and_file(encoding, file),
        line_program: None,
        dwo_id: None,
    })
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
        // Compared as bytes: most names are not ours, and need no `String`.
        let Some(name) = e
            .attr_value(gimli::DW_AT_name)?
            .and_then(|v| dwarf.attr_string(unit, v).ok())
        else {
            continue;
        };
        let Some((tag, members)) = want.iter().find(|(t, _)| t.as_bytes() == name.slice()) else {
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

/// Let what DWARF found override the table's (and debug offsets') values. Long: one `if let` per
/// DWARF member that can override a layout field, grouped by struct; a flat list kept whole reads
/// as the table of what DWARF overrides.
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
