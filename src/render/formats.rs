//! The output formats of `record`, chosen in one place: adding one (svg, collapsed, speedscope,
//! pprof) is one variant and one arm of each match below.

use super::{html, json};
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
            RecordFormat::Json => json::to_json(doc),
            RecordFormat::Html => Ok(html::record_page(doc).into_bytes()),
        }
    }
}
