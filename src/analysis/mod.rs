//! Stage 4 of the pipeline: turning walked objects into answers (census, growth, retention).

pub mod census;
pub mod complete;
pub mod memory;
pub mod retention;
pub mod snapshot;
pub mod why;
