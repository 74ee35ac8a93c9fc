//! A census: objects counted and sized by type name.

use crate::heap::sizes::getsizeof;
use crate::heap::types::TypeTable;
use crate::process::View;
use crate::python::Layout;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TypeCount {
    #[serde(rename = "type")]
    pub name: String,
    pub count: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Census {
    pub types: Vec<TypeCount>,
    pub objects: u64,
    pub bytes: u64,
    /// Objects whose type pointer was not a valid type (torn reads, corruption).
    pub bad_type: u64,
    /// Objects of a valid type whose size fields did not make sense (counted at base size).
    pub bad_size: u64,
}

/// Count and size `objects`. Types are resolved once per distinct type pointer.
pub fn count(view: &mut View, l: &Layout, types: &mut TypeTable, objects: &[u64]) -> Census {
    // Group by type pointer first: one hash lookup per object, names resolved afterwards.
    let mut by_ptr: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut census = Census::default();
    for &obj in objects {
        let Some(tp) = view.u64(obj + l.ob_type) else {
            census.bad_type += 1;
            continue;
        };
        let Some(info) = types.get(view, l, tp) else {
            census.bad_type += 1;
            continue;
        };
        // An object whose size fields do not validate is still counted: at its base size.
        let size = getsizeof(view, l, obj, info).unwrap_or_else(|| {
            log::debug!("size of a {} at {obj:#x} did not validate", info.name);
            census.bad_size += 1;
            info.basicsize + info.preheader
        });
        let e = by_ptr.entry(tp).or_default();
        e.0 += 1;
        e.1 += size;
    }
    let mut by_name: HashMap<String, (u64, u64)> = HashMap::new();
    for (tp, (n, b)) in by_ptr {
        if let Some(info) = types.get(view, l, tp) {
            let e = by_name.entry(info.name.to_string()).or_default();
            e.0 += n;
            e.1 += b;
        }
    }
    census.types = by_name
        .into_iter()
        .map(|(name, (count, bytes))| TypeCount { name, count, bytes })
        .collect();
    census
        .types
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    census.objects = census.types.iter().map(|t| t.count).sum();
    census.bytes = census.types.iter().map(|t| t.bytes).sum();
    census
}
