//! Commands around Python stacks: `dump` (every thread's stack now) and the hidden
//! `alloc-profile` (which code makes the heap grow, as collapsed stacks).

use super::target::{open_target, TargetArgs};
use crate::analysis::dump;
use crate::analysis::session::{Session, SnapshotOptions};
use crate::analysis::timeline::alloc_profile::{self, AllocProfile, AllocSampler, SamplerOptions};
use crate::error::Error;
use crate::render;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, ValueEnum)]
pub enum DumpFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct DumpArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(short, long, value_enum, default_value = "text")]
    format: DumpFormat,
    /// The same as `--format json` (py-spy's `dump --json`).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Show each frame's file as its whole path, not relative to the target's sys.path (the
    /// JSON has both: `file` and `label`).
    #[arg(long)]
    full_filenames: bool,
}

#[derive(Args)]
pub struct AllocProfileArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Seconds to sample.
    #[arg(short, long, default_value = "10")]
    duration: f64,
    /// Samples per second.
    #[arg(short, long, default_value = "100")]
    rate: f64,
    /// Young-generation nodes read per sample at most.
    #[arg(long, default_value = "64")]
    max_walk: usize,
    /// Collapsed stacks (`frame;frame;frame bytes`) go here.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Also write the profile with its statistics as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Stop the target (ptrace) during the two heap counts that measure growth, for an exact
    /// figure on a busy process, and, when it traces its allocations (exact mode), during each
    /// reading of its tracemalloc tables; sampling itself never stops it.
    #[arg(long)]
    pause: bool,
    /// Show each frame's file as its whole path, not relative to the target's sys.path.
    #[arg(long)]
    full_filenames: bool,
}

fn open(target: &TargetArgs, pause: bool, verb: &str) -> anyhow::Result<Session> {
    if target.heap.is_some() {
        // A heap dump keeps objects and references, not the threads' stacks now.
        return Err(Error::Usage(format!(
            "{verb} reads a live process (--pid) or a core (--core), not a heap dump (--heap)"
        ))
        .into());
    }
    Ok(Session::from_target(
        open_target(target)?,
        SnapshotOptions {
            resolve: target.resolve_options(),
            pause,
            ..Default::default()
        },
    )?)
}

pub fn dump_cmd(a: DumpArgs) -> anyhow::Result<()> {
    let mut session = open(&a.target, false, "dump")?;
    let d = dump::take(&mut session, a.full_filenames);
    let format = if a.json { DumpFormat::Json } else { a.format };
    let bytes = match format {
        DumpFormat::Text => crate::render::reports::stacks_dump(&d).into_bytes(),
        DumpFormat::Json => render::json::to_json(&d)?,
    };
    render::output::write(None, &bytes)
}

pub fn alloc_profile_cmd(a: AllocProfileArgs) -> anyhow::Result<()> {
    let valid = a.rate > 0.0 && a.rate <= 10_000.0 && a.duration > 0.0 && a.max_walk > 0;
    if !valid {
        return Err(Error::Usage(
            "--rate must be in (0, 10000], --duration and --max-walk positive".into(),
        )
        .into());
    }
    if a.target.core.is_some() {
        return Err(crate::error::Error::Usage(
            "alloc-profile samples a running process: use --pid (a core file has no future)".into(),
        )
        .into());
    }
    let mut session = open(&a.target, a.pause, "alloc-profile")?;
    let opts = SamplerOptions {
        max_walk: a.max_walk,
        pause_traced_reads: a.pause,
        baseline: alloc_profile::baseline_for(Some(Duration::from_secs_f64(a.duration))),
        full_filenames: a.full_filenames,
        ..Default::default()
    };
    let mut sampler = AllocSampler::with_options(&session, opts)?;
    let period = Duration::from_secs_f64(1.0 / a.rate);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration);
    let mut next = start;
    let mut ticks = 0u64;
    while Instant::now() < end {
        sampler.sample(&session);
        ticks += 1;
        if ticks.is_multiple_of(64) && !session.target.is_alive() {
            return Err(Error::Exited(session.target.pid).into());
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Behind (a slow tick): do not burst to catch up.
            next = now;
        }
    }
    let profile = sampler.finish(&mut session);
    render::output::write(a.output.as_deref(), profile.folded().as_bytes())?;
    if let Some(path) = &a.json {
        render::output::write(Some(path), &render::json::to_json(&profile)?)?;
    }
    eprint!("{}", summary(&profile, a.rate));
    Ok(())
}

/// A few lines for the terminal: how sampling went and the heaviest stacks' leaf frames.
fn summary(p: &AllocProfile, asked_hz: f64) -> String {
    let s = &p.stats;
    let total: u64 = p.stacks.iter().map(|x| x.1).sum();
    let mut out = if p.method == alloc_profile::TRACEMALLOC {
        format!(
            "exact: read from the target's own tracemalloc over {:.1}s (no sampling): {} B \
             grew under {} allocating stacks\n",
            s.duration_s,
            total,
            p.stacks.len()
        )
    } else {
        format!(
            "{} samples in {:.1}s ({:.0}/s of {asked_hz:.0} asked), {:.0} µs mean per sample \
         (p95 {:.0}); {} skipped during a collection\n{} objects recorded, {} survived \
         ({} B sampled, scaled x{:.1} to the growth of {})\n",
            s.ticks,
            s.duration_s,
            s.achieved_hz,
            s.tick_us_mean,
            s.tick_us_p95,
            s.skipped_collecting,
            s.distinct_records,
            s.survivors,
            s.survivor_bytes,
            s.scale,
            if s.fresh_pages.is_some() {
                "every object"
            } else {
                "GC objects"
            },
        )
    };
    for (frames, bytes, _) in p.stacks.iter().take(5) {
        let leaf = frames.last().map(String::as_str).unwrap_or("?");
        let pct = if total > 0 {
            100.0 * *bytes as f64 / total as f64
        } else {
            0.0
        };
        out.push_str(&format!("  {pct:5.1}%  {bytes:>12} B  {leaf}\n"));
    }
    for w in &p.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}
