//! Where tracemalloc keeps its tables in each CPython version, and how they are laid out
//! (cpython-internals.md §6): the per-version facts of the tracemalloc walker
//! (`heap::tracemalloc`), resolved once with the rest of the build's layout.

use super::dwarf::Offsets;

/// `_PyRuntime.tracemalloc` per minor version, when no DWARF says otherwise (x86_64 builds).
const RUNTIME_OFFSETS: &[(u8, u64)] = &[(12, 2768), (13, 10080), (14, 10296), (15, 10432)];
/// Inside `struct _tracemalloc_runtime_state` (3.12+): the traces and domains table pointers.
const STATE_TRACES: u64 = 184;
const STATE_DOMAINS: u64 = 192;

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
