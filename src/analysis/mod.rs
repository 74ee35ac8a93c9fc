//! Stage 4 of the pipeline: turning walked objects into answers (census, growth, retention).

pub mod alloc_profile;
pub mod census;
pub mod dump;
pub mod snapshot;
