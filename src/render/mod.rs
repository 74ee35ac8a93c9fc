//! Stage 5 of the pipeline: writing results for people (tables) and programs (JSON).

pub mod json;
pub mod output;
pub mod table;
