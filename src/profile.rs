//! The profile model: stacks of frames weighted by bytes, objects or samples, and the words
//! that say what was measured. Analyses build one (allocation growth by Python stack, retention
//! paths from the roots); `render::profile` turns it into a flamegraph or an export. Nothing
//! here reads a process or writes a format.

use clap::ValueEnum;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a stack's value counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Bytes,
    Objects,
    Samples,
}

impl Unit {
    /// The plural noun a person reads after a number: "1,024 bytes".
    pub fn noun(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Objects => "objects",
            Unit::Samples => "samples",
        }
    }
}

/// One stack and its weight.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stack {
    /// Frames, root first (the outermost caller, or the root object of a retention path).
    pub frames: Vec<String>,
    /// Weight in the profile's [`Unit`].
    pub value: u64,
    /// How many objects make up `value` when the unit is bytes and the producer knows it (pprof
    /// then carries `inuse_objects` beside `inuse_space`; speedscope gets a second profile).
    /// Used only when every stack has it; ignored for other units.
    pub objects: Option<u64>,
}

impl Stack {
    pub fn new<S: Into<String>>(frames: impl IntoIterator<Item = S>, value: u64) -> Stack {
        Stack {
            frames: frames.into_iter().map(Into::into).collect(),
            value,
            objects: None,
        }
    }

    pub fn with_objects(mut self, objects: u64) -> Stack {
        self.objects = Some(objects);
        self
    }
}

/// A weighted set of stacks and the words that tell a person what was measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Short headline, e.g. "Heap growth by allocating stack, pid 4242".
    pub title: String,
    /// The honest statement of what is measured and how, e.g. "bytes of GC-tracked objects
    /// alive at the end and not at the start of a 30 s window; sampled every 1 ms". One line;
    /// past about 150 characters it no longer fits the SVG's default 1200 px width.
    pub subtitle: String,
    pub unit: Unit,
    pub stacks: Vec<Stack>,
    /// Frame files shown shortened (`leaky.py`, relative to the target's `sys.path`), with
    /// their whole paths: the formats with a file field of their own (speedscope, pprof) write
    /// the whole path there, for tools that open the source; labels stay short.
    pub files: BTreeMap<String, String>,
}

impl Profile {
    pub fn new(title: impl Into<String>, subtitle: impl Into<String>, unit: Unit) -> Profile {
        Profile {
            title: title.into(),
            subtitle: subtitle.into(),
            unit,
            stacks: Vec::new(),
            files: BTreeMap::new(),
        }
    }

    /// Add one stack (frames root first).
    #[allow(dead_code)] // only the unit tests build profiles stack by stack
    pub fn push<S: Into<String>>(&mut self, frames: impl IntoIterator<Item = S>, value: u64) {
        self.stacks.push(Stack::new(frames, value));
    }

    /// Sum of all values (saturating: values come from a hostile heap).
    #[allow(dead_code)] // only the unit tests ask for the total
    pub fn total(&self) -> u64 {
        self.stacks
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.value))
    }

    /// True when every stack carries an object count, so formats can show it beside bytes.
    pub fn has_object_counts(&self) -> bool {
        self.unit == Unit::Bytes
            && !self.stacks.is_empty()
            && self.stacks.iter().all(|s| s.objects.is_some())
    }

    /// Merge stacks with identical frames (summing values and object counts) and sort them by
    /// frames, so every renderer sees each stack once and output is deterministic.
    pub fn merge_identical(&mut self) {
        self.stacks = merge_stacks(std::mem::take(&mut self.stacks));
    }

    /// A merged, sorted copy (see [`Profile::merge_identical`]).
    pub fn merged(&self) -> Profile {
        let mut p = self.clone();
        p.merge_identical();
        p
    }
}

/// Merge stacks with identical frames; the result is sorted by frames. An object count
/// survives only if every merged stack had one.
pub fn merge_stacks(stacks: Vec<Stack>) -> Vec<Stack> {
    let mut merged: BTreeMap<Vec<String>, (u64, Option<u64>)> = BTreeMap::new();
    for s in stacks {
        match merged.entry(s.frames) {
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert((s.value, s.objects));
            }
            std::collections::btree_map::Entry::Occupied(mut e) => {
                let (value, objects) = e.get_mut();
                *value = value.saturating_add(s.value);
                *objects = match (*objects, s.objects) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    _ => None,
                };
            }
        }
    }
    merged
        .into_iter()
        .map(|(frames, (value, objects))| Stack {
            frames,
            value,
            objects,
        })
        .collect()
}
