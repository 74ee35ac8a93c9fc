//! Stage 5 of the pipeline: writing results for people (tables, pages, flamegraphs) and
//! programs (JSON, folded stacks, speedscope, pprof).

pub mod dot;
pub mod formats;
pub mod html;
pub mod json;
pub mod output;
pub mod profile;
pub mod reports;
pub mod summary;
pub mod svg;
pub mod table;
pub mod tree_table;
