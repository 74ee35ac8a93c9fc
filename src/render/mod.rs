//! Stage 5 of the pipeline: writing results for people (tables, flamegraphs) and programs
//! (JSON, folded stacks, speedscope, pprof).

pub mod json;
pub mod output;
pub mod profile;
pub mod table;
pub mod tree_table;
