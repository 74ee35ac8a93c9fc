//! Profiles: stacks of frames weighted by bytes, objects or samples, rendered as a flamegraph
//! (SVG) or exported for other viewers (folded text, speedscope JSON, pprof protobuf).
//!
//! Both kinds of flamegraph pymemspy draws go through here: allocation profiles (Python stacks
//! weighted by the heap growth they cause) and retention profiles (paths from roots such as
//! `__main__.app_cache` through containers down to types, weighted by retained bytes). Nothing in
//! this module reads a process: it turns a [`Profile`] into bytes and is tested on its own.
//!
//! # Frames
//! A frame is a display string, root first in [`Stack::frames`]. A frame that comes from Python
//! code should follow the convention `FUNCTION (FILE:LINE)` (see [`python_frame`]): formats with
//! structure (pprof, speedscope) then split it into function, file and line; any other string
//! (`dict`, `__main__.app_cache`, `['users']`) is kept whole as the function name. Frame strings
//! may hold anything, including `;`, newlines and control characters: the folded formats escape
//! them (see [`folded::sanitize_frame`]) so the output stays parseable.

mod command;
mod folded;
mod frame;
mod pprof;
mod speedscope;
mod svg;

pub use command::{render_command, RenderArgs};
use folded::parse_collapsed;
// Helpers marked `allow(dead_code)` / `allow(unused_imports)` are for the allocation and
// retention producers; until those land only tests call them.
#[allow(unused_imports)]
pub use frame::python_frame;

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

    #[allow(dead_code)]
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
}

impl Profile {
    pub fn new(title: impl Into<String>, subtitle: impl Into<String>, unit: Unit) -> Profile {
        Profile {
            title: title.into(),
            subtitle: subtitle.into(),
            unit,
            stacks: Vec::new(),
        }
    }

    /// Add one stack (frames root first).
    #[allow(dead_code)]
    pub fn push<S: Into<String>>(&mut self, frames: impl IntoIterator<Item = S>, value: u64) {
        self.stacks.push(Stack::new(frames, value));
    }

    /// Sum of all values (saturating: values come from a hostile heap).
    #[allow(dead_code)]
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

/// Shown for a stack without frames, so its weight is still seen and counted.
const NO_FRAMES: &str = "(no frames)";

/// A stack's frames, root first, or the single placeholder frame when it has none.
fn frames_or_placeholder(stack: &Stack) -> impl DoubleEndedIterator<Item = &str> {
    let placeholder = stack.frames.is_empty().then_some(NO_FRAMES);
    stack.frames.iter().map(String::as_str).chain(placeholder)
}

/// The output formats a profile can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProfileFormat {
    /// Interactive flamegraph (open in a browser).
    Svg,
    /// Folded stacks, one `frame;frame;frame value` per line (inferno, flamegraph.pl).
    Collapsed,
    /// speedscope JSON (https://www.speedscope.app).
    Speedscope,
    /// gzipped pprof protobuf (`go tool pprof`, pprof web UI).
    Pprof,
}

impl ProfileFormat {
    /// The usual file name ending for this format, for producers choosing a default path.
    #[allow(dead_code)]
    pub fn extension(self) -> &'static str {
        match self {
            ProfileFormat::Svg => "svg",
            ProfileFormat::Collapsed => "folded",
            ProfileFormat::Speedscope => "speedscope.json",
            ProfileFormat::Pprof => "pb.gz",
        }
    }
}

/// Render `profile` in `format`. Stacks are merged first, so callers may push duplicates.
/// An SVG of a profile whose values are all zero is an error (there is nothing to draw); the
/// other formats write an empty profile.
pub fn render(profile: &Profile, format: ProfileFormat) -> anyhow::Result<Vec<u8>> {
    let merged = profile.merged();
    match format {
        ProfileFormat::Svg => svg::render(&merged),
        ProfileFormat::Collapsed => Ok(folded::render(&merged).into_bytes()),
        ProfileFormat::Speedscope => speedscope::render(&merged),
        ProfileFormat::Pprof => pprof::render(&merged),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A profile with the awkward cases every format must survive.
    pub(crate) fn sample_profile() -> Profile {
        let mut p = Profile::new(
            "Heap growth by allocating stack",
            "bytes of objects allocated and still alive after 10 s (test data)",
            Unit::Bytes,
        );
        p.push(
            [
                "<module> (app.py:40)",
                "handle (app.py:12)",
                "load_users (db.py:7)",
            ],
            4096,
        );
        p.push(["<module> (app.py:40)", "handle (app.py:12)"], 1000);
        p.push(["<module> (app.py:40)", "cache;put (cache.py:3)"], 512);
        p.push(["<module> (app.py:40)", "handle (app.py:12)"], 24);
        p.push(["__main__.app_cache", "dict", "weird\nname\twith 12"], 7);
        p
    }

    #[test]
    fn merge_sums_identical_stacks_and_sorts() {
        let mut p = sample_profile();
        let total = p.total();
        p.merge_identical();
        assert_eq!(p.stacks.len(), 4);
        assert_eq!(p.total(), total);
        let handle = p
            .stacks
            .iter()
            .find(|s| s.frames.len() == 2 && s.frames[1] == "handle (app.py:12)")
            .unwrap();
        assert_eq!(handle.value, 1024);
        assert!(p.stacks.windows(2).all(|w| w[0].frames < w[1].frames));
    }

    #[test]
    fn object_counts_survive_merge_only_when_all_present() {
        let stacks = vec![
            Stack::new(["a", "b"], 10).with_objects(1),
            Stack::new(["a", "b"], 20).with_objects(2),
            Stack::new(["a", "c"], 5).with_objects(1),
            Stack::new(["a", "c"], 5),
        ];
        let merged = merge_stacks(stacks);
        assert_eq!(merged[0].objects, Some(3));
        assert_eq!(merged[1].objects, None);
    }

    #[test]
    fn totals_saturate_instead_of_overflowing() {
        let mut p = Profile::new("t", "s", Unit::Bytes);
        p.push(["a"], u64::MAX);
        p.push(["a"], 5);
        p.push(["b"], 5);
        assert_eq!(p.total(), u64::MAX);
        assert_eq!(p.merged().stacks[0].value, u64::MAX);
    }

    #[test]
    fn every_format_renders_the_sample() {
        for format in ProfileFormat::value_variants() {
            let bytes = render(&sample_profile(), *format).unwrap();
            assert!(!bytes.is_empty(), "{format:?}");
        }
    }

    #[test]
    fn empty_profile_is_an_error_only_for_svg() {
        let p = Profile::new("t", "s", Unit::Objects);
        assert!(render(&p, ProfileFormat::Svg).is_err());
        for format in [
            ProfileFormat::Collapsed,
            ProfileFormat::Speedscope,
            ProfileFormat::Pprof,
        ] {
            render(&p, format).unwrap();
        }
    }
}
