//! Stage 2 of the pipeline: what CPython build runs in the target, and its layout.

pub mod binary;
pub mod debug_offsets;
pub mod dwarf;
pub mod frames_layout;
pub mod layout;
pub mod layout_cache;
pub mod processes;
pub mod resolve;
pub mod tables;
pub mod tracemalloc_layout;

pub use layout::Layout;
pub use resolve::{resolve, Python, ResolveOptions};
