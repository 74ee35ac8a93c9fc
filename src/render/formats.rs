//! The output formats of `record`, chosen in one place: adding one (svg, collapsed, speedscope,
//! pprof) is one variant and one arm of each match below.

use super::html;
use super::profile::{render_or_note, ProfileFormat};
use crate::analysis::timeline::recording::{self, RecordDoc};
use crate::profile::{Profile, Stack, Unit};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RecordFormat {
    /// The allocation flamegraph: which code makes the heap grow (the recording goes beside it
    /// as JSON).
    #[default]
    #[value(alias = "flamegraph")]
    Svg,
    /// The allocation profile as folded stacks (py-spy calls it `raw`).
    #[value(alias = "raw")]
    Collapsed,
    Speedscope,
    Pprof,
    /// The whole recording, schema pymemspy.record/1.
    Json,
    /// One self-contained page with growth charts (no external files).
    Html,
}

impl RecordFormat {
    /// File extension for the default output name `pymemspy-PID.EXT`.
    pub fn extension(self) -> &'static str {
        match self.profile_format() {
            Some(f) => f.extension(),
            None if self == RecordFormat::Html => "html",
            None => "json",
        }
    }

    pub fn render(self, doc: &RecordDoc) -> anyhow::Result<Vec<u8>> {
        match self {
            // Compact: a long recording's timeline is large, and pretty-printing would put every
            // [count, bytes] pair on three lines.
            RecordFormat::Json => {
                let mut out = serde_json::to_vec(doc)?;
                out.push(b'\n');
                Ok(out)
            }
            RecordFormat::Html => Ok(html::record_page(doc).into_bytes()),
            _ => {
                let format = self.profile_format().unwrap_or(ProfileFormat::Svg);
                let (profile, note) = allocation_profile(doc)?;
                render_or_note(&profile, format, note)
            }
        }
    }

    /// The format an output file name asks for: `.json`, `.html`, `.svg`, `.folded`/`.txt`,
    /// `.speedscope.json`, `.pb.gz`/`.pprof`.
    pub fn from_path(path: &std::path::Path) -> Option<RecordFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        Some(if name.ends_with(".speedscope.json") {
            RecordFormat::Speedscope
        } else if name.ends_with(".json") {
            RecordFormat::Json
        } else if name.ends_with(".html") || name.ends_with(".htm") {
            RecordFormat::Html
        } else if name.ends_with(".svg") {
            RecordFormat::Svg
        } else if name.ends_with(".folded")
            || name.ends_with(".txt")
            || name.ends_with(".collapsed")
        {
            RecordFormat::Collapsed
        } else if name.ends_with(".pb.gz") || name.ends_with(".pprof") || name.ends_with(".pb") {
            RecordFormat::Pprof
        } else {
            return None;
        })
    }

    /// The flamegraph formats render the allocation profile.
    pub fn profile_format(self) -> Option<ProfileFormat> {
        match self {
            RecordFormat::Svg => Some(ProfileFormat::Svg),
            RecordFormat::Collapsed => Some(ProfileFormat::Collapsed),
            RecordFormat::Speedscope => Some(ProfileFormat::Speedscope),
            RecordFormat::Pprof => Some(ProfileFormat::Pprof),
            RecordFormat::Json | RecordFormat::Html => None,
        }
    }
}

/// What an idle recording's flamegraph and summary say instead of a stack.
pub const NO_GROWTH: &str = "no surviving growth sampled: nothing the sampled code allocated \
                             was still alive at the end";

/// The recording's allocation stacks as a profile. Without one (--rate 0, a free-threaded
/// build, a target that exited before the end) the picture says so instead of failing: what was
/// recorded is still written.
/// With it, what the SVG says where there is nothing to draw (no stack is made up: a fake
/// frame would pass for code in the folded, speedscope and pprof files).
fn allocation_profile(doc: &RecordDoc) -> anyhow::Result<(Profile, &'static str)> {
    let Some(a) = &doc.allocations else {
        let p = Profile::new(
            format!("No allocation profile (pid {})", doc.pid),
            "none was recorded: --rate 0, a free-threaded build, or the target exited before \
             the end (see the recording's warnings)",
            Unit::Bytes,
        );
        return Ok((p, "no allocation profile"));
    };
    let (mode, subtitle) = if a.mode == recording::SAMPLED {
        (
            "sampled",
            format!(
                "{}{} — {}",
                a.method,
                a.attributed_share
                    .map(|s| format!(" ({:.0}% of the sampled growth on whole stacks)", 100.0 * s))
                    .unwrap_or_default(),
                recording::SAMPLED_HINT
            ),
        )
    } else {
        ("exact", a.method.clone())
    };
    let mut p = Profile::new(
        format!(
            "Allocation flamegraph ({mode}): which code makes the heap grow (pid {}, Python {})",
            doc.pid, doc.python.version
        ),
        subtitle,
        Unit::Bytes,
    );
    p.files = a.files.clone();
    for s in &a.stacks {
        p.stacks
            .push(Stack::new(s.stack.clone(), s.bytes).with_objects(s.objects));
    }
    if p.stacks.iter().all(|s| s.value == 0) {
        p.title = format!(
            "Allocation flamegraph: no surviving growth sampled (pid {}, Python {})",
            doc.pid, doc.python.version
        );
    }
    Ok((p, NO_GROWTH))
}
