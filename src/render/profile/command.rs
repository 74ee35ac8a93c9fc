//! `pymemspy render`: draw folded stacks from a file in any profile format. Hidden from help;
//! it exercises the renderers end to end without a target process, and re-renders a saved
//! `--format collapsed` output later.

use super::{parse_collapsed, render, ProfileFormat};
use crate::error::Error;
use crate::profile::{Profile, Unit};
use crate::render::output;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct RenderArgs {
    /// Folded stacks, one `frame;frame;frame value` per line (`-` for standard input).
    #[arg(short, long)]
    input: PathBuf,
    #[arg(short, long, value_enum, default_value = "svg")]
    format: ProfileFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[arg(long, default_value = "pymemspy profile")]
    title: String,
    /// What the values measure, shown under the title (default: the input file's name).
    #[arg(long)]
    subtitle: Option<String>,
    /// What the values count.
    #[arg(long, value_enum, default_value = "bytes")]
    unit: Unit,
}

pub fn render_command(args: RenderArgs) -> anyhow::Result<()> {
    let raw = if args.input.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Error::io("cannot read standard input", e))?;
        buf
    } else {
        std::fs::read(&args.input)
            .map_err(|e| Error::io(format!("cannot read {}", args.input.display()), e))?
    };
    // Folded files from other tools are not always UTF-8; a bad byte becomes U+FFFD.
    let text = String::from_utf8_lossy(&raw);
    let parsed = parse_collapsed(&text);
    if let Some(line) = parsed.first_skipped_line {
        eprintln!(
            "pymemspy: skipped {} line(s) of {} that are not `frame;frame value` (first: line {line})",
            parsed.skipped,
            args.input.display()
        );
    }
    let subtitle = args
        .subtitle
        .unwrap_or_else(|| format!("{} from {}", args.unit.noun(), args.input.display()));
    let mut profile = Profile::new(args.title, subtitle, args.unit);
    profile.stacks = parsed.stacks;
    let bytes = render(&profile, args.format)?;
    output::write(args.output.as_deref(), &bytes)
}
