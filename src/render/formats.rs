//! The output formats of `record`, chosen in one place: adding one (svg, collapsed, speedscope,
//! pprof) is one variant and one arm of each match below.

use super::html;
use crate::analysis::recording::RecordDoc;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RecordFormat {
    /// The whole recording, schema pymemspy.record/1.
    #[default]
    Json,
    /// One self-contained page with growth charts (no external files).
    Html,
}

impl RecordFormat {
    /// File extension for the default output name `pymemspy-PID.EXT`.
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Json => "json",
            RecordFormat::Html => "html",
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
        }
    }
}
