//! Where tracemalloc keeps its tables in each CPython version, and how they are laid out:
//! the per-version facts of the tracemalloc walker
//! (`heap::tracemalloc`), resolved once with the rest of the build's layout.

use super::dwarf::Offsets;

/// `_PyRuntime.tracemalloc` per minor version, when no DWARF says otherwise (x86_64 builds).
const RUNTIME_OFFSETS: &[(u8, u64)] = &[(12, 2768), (13, 10080), (14, 10296), (15, 10432)];
/// Inside `struct _tracemalloc_runtime_state` (3.12+): the traces and domains table pointers.
pub const STATE_TRACES: u64 = 184;
pub const STATE_DOMAINS: u64 = 192;

/// The header of a `_Py_hashtable_t` (`Modules/hashtable.h` in 3.8, `pycore_hashtable.h` from
/// 3.9): what discovery (`heap::tracemalloc::discovery`) matches a heap block against when no
/// symbol names tracemalloc's tables. Offsets in bytes; every table tracemalloc makes is
/// allocated with libc's malloc (its own allocator must not trace itself), so 16-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashtableHeader {
    pub size: u64,
    pub nbuckets: u64,
    pub nentries: u64,
    pub buckets: u64,
    pub hash_func: u64,
    pub compare_func: u64,
    /// 3.9+: `key_destroy_func`, NULL in the traces and domains tables.
    pub key_destroy: Option<u64>,
    /// 3.9+: `value_destroy_func`: `raw_free` (a static) in traces tables,
    /// `_Py_hashtable_destroy` (exported) in the domains table.
    pub value_destroy: Option<u64>,
    /// `alloc.malloc`, `alloc.free`: libc's, the same in every table tracemalloc made.
    pub malloc: u64,
    pub free: u64,
    /// 3.8: `key_size` (8, or 12 for `pointer_t` keys with domains) and `data_size` (16: an
    /// inline `trace_t`) are in the header.
    pub key_size: Option<u64>,
    pub data_size: Option<u64>,
}

/// 3.8: num_buckets, entries, buckets, key_size, data_size, hash_func, compare_func,
/// copy_data_func, free_data_func, get_data_size_func, alloc {malloc, free}.
const HEADER_38: HashtableHeader = HashtableHeader {
    size: 96,
    nbuckets: 0,
    nentries: 8,
    buckets: 16,
    key_size: Some(24),
    data_size: Some(32),
    hash_func: 40,
    compare_func: 48,
    key_destroy: None,
    value_destroy: None,
    malloc: 80,
    free: 88,
};

/// 3.9+: nentries, nbuckets, buckets, get_func, hash_func, compare_func, key_destroy_func,
/// value_destroy_func, alloc {malloc, free}.
const HEADER_39: HashtableHeader = HashtableHeader {
    size: 80,
    nentries: 0,
    nbuckets: 8,
    buckets: 16,
    hash_func: 32,
    compare_func: 40,
    key_destroy: Some(48),
    value_destroy: Some(56),
    malloc: 64,
    free: 72,
    key_size: None,
    data_size: None,
};

/// How a traces hashtable stores its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// 3.8: `{next, hash}` then the key (its size in the table header) then `trace_t` inline.
    Inline,
    /// 3.9+: `{next, hash, key, value}` with value a `trace_t *`.
    Pointers,
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 3.8–3.11: file-local statics (`tracemalloc_traces`, `_Py_tracemalloc_config`, and from
    /// 3.9 `tracemalloc_domains`), named only by a symbol table.
    Statics { domains: bool },
    /// 3.12+: `_PyRuntime.tracemalloc` at `offset`; the traces and domains table pointers at
    /// `traces` and `domains` inside it.
    Runtime {
        offset: u64,
        from_dwarf: bool,
        traces: u64,
        domains: u64,
    },
}

/// tracemalloc's layout in one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracemallocLayout {
    pub location: Location,
    pub table: TableKind,
    /// 3.8 stores `traceback_t.nframe` as an int, later versions as a u16.
    pub nframe_u32: bool,
    /// 3.15 stores `frame_t.filename` as a UTF-8 C string, earlier versions as a str object.
    pub filename_cstr: bool,
    /// The hashtable header, for finding the tables without symbols.
    pub header: HashtableHeader,
}

/// The layout for a minor version, with `_PyRuntimeState.tracemalloc` from the build's DWARF
/// when it has it; None for a version whose runtime offset is not known.
pub fn resolve(minor: u8, dwarf: &Offsets) -> Option<TracemallocLayout> {
    let location = if minor <= 11 {
        Location::Statics {
            domains: minor >= 9,
        }
    } else {
        let from_dwarf = dwarf.get("pyruntimestate.tracemalloc").copied();
        let offset = from_dwarf.or_else(|| {
            RUNTIME_OFFSETS
                .iter()
                .find(|(m, _)| *m == minor)
                .map(|(_, o)| *o)
        })?;
        Location::Runtime {
            offset,
            from_dwarf: from_dwarf.is_some(),
            traces: STATE_TRACES,
            domains: STATE_DOMAINS,
        }
    };
    Some(TracemallocLayout {
        location,
        table: if minor == 8 {
            TableKind::Inline
        } else {
            TableKind::Pointers
        },
        nframe_u32: minor == 8,
        filename_cstr: minor >= 15,
        header: if minor == 8 { HEADER_38 } else { HEADER_39 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dwarf_overrides_the_table_and_old_versions_use_statics() {
        let mut dwarf = Offsets::new();
        assert_eq!(
            resolve(9, &dwarf).unwrap().location,
            Location::Statics { domains: true }
        );
        assert_eq!(resolve(8, &dwarf).unwrap().table, TableKind::Inline);
        let Location::Runtime { offset, .. } = resolve(13, &dwarf).unwrap().location else {
            panic!("3.13 keeps tracemalloc in _PyRuntime");
        };
        assert_eq!(offset, 10080);
        dwarf.insert("pyruntimestate.tracemalloc".into(), 10104);
        let Location::Runtime {
            offset, from_dwarf, ..
        } = resolve(13, &dwarf).unwrap().location
        else {
            panic!("3.13 keeps tracemalloc in _PyRuntime");
        };
        assert_eq!((offset, from_dwarf), (10104, true));
        assert!(resolve(16, &Offsets::new()).is_none());
        assert!(resolve(15, &Offsets::new()).unwrap().filename_cstr);
    }
}
