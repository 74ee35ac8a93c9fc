//! Stage 4 of the pipeline: turning walked objects into answers (census, growth, retention).

pub mod census;
pub mod diff;
pub mod growth;
pub mod recording;
pub mod snapshot;
