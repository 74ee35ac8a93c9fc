//! Stage 3 of the pipeline: walking the target's heap with a resolved `Layout`.

pub mod arenas;
pub mod containers;
pub mod file_names;
pub mod frame_slots;
pub mod fresh_pages;
pub mod gc_lists;
pub mod gc_state;
pub mod graph;
pub mod head_pools;
pub mod line_table;
pub mod mimalloc;
pub mod native;
pub mod pyobj;
pub mod referents;
pub mod regions;
pub mod sizes;
pub mod stacks;
pub mod thread_roots;
pub mod tracemalloc;
pub mod tracemalloc_discovery;
pub mod types;
pub mod young;
