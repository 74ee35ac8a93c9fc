//! Stage 4 of the pipeline: turning walked objects into answers.
//!
//! * `session`: a process attached to and understood (memory, layout, type table, options):
//!   what every analysis below reads through.
//! * `census`: one count of every live object by type, of a process or a process tree, and
//!   where the process's memory goes.
//! * `retention`: the heap as a graph from the roots: who holds the memory, `why`, retained
//!   sizes, heap dumps and the diff between them.
//! * `timeline`: censuses over time: recordings, growth and leak suspects, diffs, and which code
//!   makes the heap grow (sampled or read from the target's tracemalloc).
//! * `dump`: every thread's stack now; `phases`: where an analysis spends time and memory.

pub mod census;
pub mod dump;
pub mod phases;
pub mod retention;
pub mod session;
pub mod timeline;

#[cfg(test)]
mod hostile_tests;
