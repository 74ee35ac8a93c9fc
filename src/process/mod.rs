//! Stage 1 of the pipeline: the target process as an address space plus its mappings and files.

pub mod core;
pub mod fds;
pub mod memory;
pub mod smaps;
pub mod stats;
pub mod target;
pub mod tree;
pub mod view;
pub mod write;

pub use memory::{Bytes, Memory, MemoryExt};
pub use target::Target;
pub use view::{Span, View};
