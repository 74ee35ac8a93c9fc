//! Stage 4 of the pipeline: turning walked objects into answers (census, growth, retention).

pub mod alloc_profile;
pub mod allocations;
pub mod census;
pub mod complete;
pub mod diff;
pub mod dominators;
pub mod dump;
pub mod gc_state;
pub mod growth;
pub mod heap_diff;
pub mod heap_file;
pub mod heap_graph;
pub mod heap_source;
pub mod memory;
pub mod phases;
pub mod record_tree;
pub mod recording;
pub mod resources;
pub mod retention;
pub mod snapshot;
pub mod snapshot_tree;
pub mod thread_roots;
pub mod traced_growth;
pub mod why;

#[cfg(test)]
mod hostile_tests;
