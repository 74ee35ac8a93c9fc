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
// Only the unit tests call `python_frame` now: the producers write the same convention themselves.
#[allow(unused_imports)]
pub use frame::python_frame;

use clap::ValueEnum;
// The model every format renders; children of this module name it through `super`.
use crate::profile::{Profile, Stack};

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

/// `render`, except that an SVG of a profile with nothing to draw is a page with its title,
/// subtitle and `note` in place of a flamegraph (an idle recording still writes its file; a
/// made-up stack would pass for code).
pub fn render_or_note(
    profile: &Profile,
    format: ProfileFormat,
    note: &str,
) -> anyhow::Result<Vec<u8>> {
    if format == ProfileFormat::Svg && profile.stacks.iter().all(|s| s.value == 0) {
        return Ok(svg::note_page(profile, note));
    }
    render(profile, format)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::profile::{merge_stacks, Unit};

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
