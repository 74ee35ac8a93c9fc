//! Censuses over time: a recording's samples, which series grow (leak suspects), differences
//! between snapshots and recordings, and which code makes the heap grow.

pub mod alloc_profile;
pub mod allocations;
pub mod diff;
pub mod growth;
pub mod record_tree;
pub mod recording;
pub mod traced_growth;
