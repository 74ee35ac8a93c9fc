//! Stage 5 of the pipeline: writing results for people (tables, pages) and programs (JSON).

pub mod formats;
pub mod html;
pub mod json;
pub mod output;
pub mod summary;
pub mod svg;
pub mod table;
