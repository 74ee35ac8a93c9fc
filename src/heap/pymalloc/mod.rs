//! pymalloc: the arenas and pools the census scans block by block (`arenas`), and the pools that hold the newest small objects (`head_pools`).

pub mod arenas;
pub mod head_pools;
