//! What the sampler did, for the report and for tuning: one record of every source's counts
//! (each source fills in its own part when the profile is built).

use crate::heap::frames::stacks::StackStats;
use crate::heap::gc::young::YoungWalkStats;
use serde::Serialize;

/// What the sampler did, for the report and for tuning.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AllocStats {
    pub duration_s: f64,
    pub ticks: u64,
    /// Ticks per second actually achieved (first to last tick).
    pub achieved_hz: f64,
    pub tick_us_mean: f64,
    pub tick_us_p50: f64,
    pub tick_us_p95: f64,
    pub tick_us_max: f64,
    /// Ticks that found a garbage collection running (no walk).
    pub skipped_collecting: u64,
    /// Ticks whose GC state could not be read.
    pub skipped_unreadable: u64,
    /// How the young-generation walks ended.
    #[serde(flatten)]
    pub walks: YoungWalkStats,
    /// Objects recorded, and objects dropped over `max_records`.
    pub records: u64,
    /// Of which untracked objects found in pymalloc's head pools.
    pub untracked_records: u64,
    /// What the head-pool reads saw (None: not available on this build).
    pub head_pools: Option<crate::heap::pymalloc::head_pools::HeadPoolStats>,
    /// Free-threaded builds: what the reads of each thread's head pages saw.
    pub fresh_pages: Option<crate::heap::mimalloc::fresh_pages::FreshPageStats>,
    pub dropped: u64,
    /// New objects not charged to any stack: found while the last GIL holder had released it
    /// (sleeping, blocked) and no earlier running stack of that thread was known, or head-pool
    /// blocks of an interval in which the running functions changed.
    pub unattributed: u64,
    /// Distinct addresses at the end (a later record at the same address replaces the earlier).
    pub distinct_records: u64,
    /// Survivors (and their bytes, before scaling) left out because their stack was read cut
    /// off: its chain did not end at the thread's first frame, or its outermost frame is not
    /// the thread's root (`StackJudge`). Shown, not charged to a stack that is not whole.
    pub cut_survivors: u64,
    pub cut_survivor_bytes: u64,
    /// Distinct stacks judged cut off.
    pub cut_stacks: u64,
    /// Recorded objects still alive at the end (fingerprint, type and refcount agree).
    pub survivors: u64,
    pub survivor_bytes: u64,
    /// Survivors by the failed check, for tuning the fingerprint.
    pub dead_type_changed: u64,
    pub dead_fingerprint_changed: u64,
    pub dead_unreadable: u64,
    /// GC-tracked objects and bytes at the first and last census (None: not taken).
    pub start_gc_bytes: Option<u64>,
    pub end_gc_bytes: Option<u64>,
    pub start_gc_objects: Option<u64>,
    pub end_gc_objects: Option<u64>,
    /// survivor bytes × scale = reported bytes.
    pub scale: f64,
    pub stacks: StackStats,
}
