//! Stage 3 of the pipeline: walking the target's heap with a resolved `Layout`, by subsystem:
//!
//! * `objects`: one object read (header, type, size, container items, native buffers) and the
//!   type table.
//! * `graph`: the labelled edges out of an object and the roots each thread holds (what
//!   retention, `why` and dumps walk).
//! * `referents`: the census's pass over pointers out of known objects, for the objects no GC
//!   list or pool holds.
//! * `pymalloc`: arenas and pools (the census's scan; the young objects' head pools).
//! * `mimalloc`: free-threaded builds' heaps and pages (the scan, the fresh pages sampled).
//! * `gc`: the collector's lists, its state, the young generation.
//! * `frames`: threads' stacks, frames' slots, line tables, file labels.
//! * `tracemalloc`: the target's own traces tables, found by symbol, offset or discovery.
//! * `regions`: address ranges a scan has judged block by block.
//! * `walk`: the context (view, layout, type table) the scans pass as one value.

pub mod frames;
pub mod gc;
pub mod graph;
pub mod mimalloc;
pub mod objects;
pub mod pymalloc;
pub mod referents;
pub mod regions;
pub mod tracemalloc;
pub mod walk;
