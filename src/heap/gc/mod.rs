//! The cyclic collector: its lists (`gc_lists`), its state and counters (`gc_state`), the young generation the allocation sampler reads (`young`).

pub mod gc_lists;
pub mod gc_state;
pub mod young;
