//! The complete census: GC lists ∪ pymalloc arena objects ∪ what they reference.

use crate::heap::arenas::{self, BlockObject};
use crate::heap::referents::Referents;
use crate::heap::types::TypeTable;
use crate::process::View;
use crate::python::Python;

pub struct AllObjects {
    /// Every object found, sorted by address, each once.
    pub objects: Vec<u64>,
    /// pymalloc block objects with their block sizes (for allocated bytes).
    pub blocks: Vec<BlockObject>,
    pub arenas: Option<arenas::Arenas>,
    pub scan: arenas::ScanStats,
    pub sources: Vec<String>,
    pub warnings: Vec<String>,
}

impl AllObjects {
    /// Just these objects (the GC-only census).
    pub fn only(objects: Vec<u64>) -> AllObjects {
        AllObjects {
            objects,
            blocks: Vec::new(),
            arenas: None,
            scan: Default::default(),
            sources: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

pub fn find_all(view: &mut View, py: &Python, types: &mut TypeTable, gc: &[u64]) -> AllObjects {
    let l = &py.layout;
    let mut out = AllObjects {
        objects: Vec::new(),
        blocks: Vec::new(),
        arenas: None,
        scan: Default::default(),
        sources: Vec::new(),
        warnings: Vec::new(),
    };
    let arenas = match arenas::locate(view, py) {
        Ok(a) => a,
        Err(why) => {
            out.warnings.push(format!(
                "pymalloc arenas not scanned ({why}): only GC-tracked objects and what they \
                 reference were counted"
            ));
            arenas::Arenas::default()
        }
    };
    if arenas.arenas.is_empty() && out.warnings.is_empty() {
        out.warnings.push(
            "no pymalloc arenas in use (PYTHONMALLOC=malloc or mimalloc?): only GC-tracked \
             objects and what they reference were counted"
                .into(),
        );
    }
    let mut refs = Referents::new(&arenas);
    gc.iter().for_each(|&o| refs.mark_known(o));
    let (blocks, scan) = arenas::scan(view, l, types, &arenas, |view, _types, obj, info, body| {
        refs.scan(view, l, obj, info, Some(body))
    });
    // GC objects the arena scan did not cover (large ones, or ones it could not validate).
    for &o in gc {
        if blocks.binary_search_by_key(&o, |b| b.obj).is_ok() {
            continue;
        }
        let Some(tp) = view.u64(o + l.ob_type) else {
            continue;
        };
        if let Some(t) = types.get(view, l, tp).cloned() {
            refs.scan(view, l, o, &t, None);
        }
    }
    refs.drain(view, l, types);
    out.sources.push(format!(
        "pymalloc arenas: {} arenas ({}{}), {} objects in {} blocks",
        arenas.arenas.len(),
        arenas.found_by,
        if scan.framing == arenas::DEBUG_FRAMING {
            "; debug allocator framing"
        } else {
            ""
        },
        blocks.len(),
        scan.blocks_in_use
    ));
    out.sources.push(format!(
        "referents: {} more objects outside the arenas",
        refs.found.len()
    ));
    let mut all: Vec<u64> = Vec::with_capacity(gc.len() + blocks.len() + refs.found.len());
    all.extend_from_slice(gc);
    all.extend(blocks.iter().map(|b| b.obj));
    all.extend_from_slice(&refs.found);
    all.sort_unstable();
    all.dedup();
    out.objects = all;
    out.blocks = blocks;
    out.scan = scan;
    out.arenas = Some(arenas);
    out
}
