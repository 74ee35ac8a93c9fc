//! Stage 4 of the pipeline: turning walked objects into answers (census, growth, retention).

pub mod census;
pub mod complete;
pub mod diff;
pub mod growth;
pub mod memory;
pub mod recording;
pub mod snapshot;
