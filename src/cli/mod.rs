//! Command line: subcommands and their options, dispatched to the pipeline.

mod heap;
mod snapshot;
mod stacks;
mod target;

use crate::analysis::retention::heap_source::LiveSource;
use crate::analysis::retention::why;
use crate::analysis::session::{Session, SnapshotOptions};
use crate::analysis::timeline::diff;
use crate::analysis::timeline::recording;

use crate::error::Error;
use crate::record::{RecordOptions, Source};
use crate::render;
use crate::render::formats::RecordFormat;
use crate::render::profile::ProfileFormat;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;
use target::{open_target, parse_pid, ResolveArgs, TargetArgs};

#[derive(Parser)]
#[command(
    name = "pymemspy",
    version,
    about = "Where is the memory of a running Python process? Reads it from outside: no code \
             injected, nothing written, not stopped unless asked.",
    after_help = "Exit status: 0 done; 1 other failure (e.g. writing the output); 2 bad command \
                  line; 3 no such process (or it exited); 4 permission denied; 5 not a Python \
                  process, or a build pymemspy cannot read."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Census of live objects by type, now (or what holds them: --format flamegraph; a heap
    /// dump to read later with --heap FILE: --format heap -o FILE).
    Snapshot(SnapshotArgs),
    /// Watch a process over time: what grows, at what rate, which types leak.
    ///
    /// `record --pid PID` attaches to a running process; `record [OPTIONS] -- python app.py`
    /// starts the program and records it until it exits. Ctrl-C, --duration or the target
    /// exiting end the recording, and everything recorded so far is written.
    Record(RecordArgs),
    /// A live view in the terminal: types by bytes, count or growth, refreshed every interval.
    ///
    /// Keys: b/g/c sort by bytes, growth, count; s leak suspects; p pause; q or Ctrl-C quit.
    Top(TopArgs),
    /// Per-type differences between two snapshots or recordings (their last samples).
    Diff(DiffArgs),
    /// Reference paths from the roots that keep objects of a type alive.
    Why(WhyArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `pymemspy manpage > pymemspy.1`.
    Manpage,
    /// Print the resolved CPython layout of a process as JSON (for debugging new builds).
    #[command(hide = true, mut_arg("heap", |a| a.hide(true)))]
    Layout(TargetArgs),
    /// Draw folded stacks from a file as svg, collapsed, speedscope or pprof.
    #[command(hide = true)]
    Render(render::profile::RenderArgs),
    /// Every thread's Python stack now (innermost frame first), without pausing the process.
    // A heap dump holds no stacks: `--heap` is not listed here (and refused if given).
    #[command(mut_arg("heap", |a| a.hide(true)))]
    Dump(stacks::DumpArgs),
    /// Which code makes the heap grow (sampled, or exact from the target's own tracemalloc when
    /// it traces); writes collapsed stacks weighted by bytes.
    // It samples a running process: a heap dump or a core (no future) is refused, so neither
    // is listed.
    #[command(
        hide = true,
        mut_arg("heap", |a| a.hide(true)),
        mut_arg("core", |a| a.hide(true)),
        mut_arg("executable", |a| a.hide(true))
    )]
    AllocProfile(stacks::AllocProfileArgs),
    /// Serve every Python process's heap as Prometheus metrics (/metrics), censused in the
    /// background.
    Exporter(crate::exporter::ExporterArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum SnapshotFormat {
    Table,
    Json,
    /// The retention flamegraph as SVG (what holds the memory).
    Flamegraph,
    Svg,
    /// Folded stacks (py-spy calls them `raw`).
    #[value(alias = "raw")]
    Collapsed,
    Speedscope,
    Pprof,
    /// A heap dump (objects, references, roots, type names and the census; no values): every
    /// analysis reads it later with `--heap FILE`.
    Heap,
}

impl SnapshotFormat {
    /// The flamegraph formats: the retention tree rendered by `render::profile`.
    fn profile_format(self) -> Option<ProfileFormat> {
        match self {
            SnapshotFormat::Flamegraph | SnapshotFormat::Svg => Some(ProfileFormat::Svg),
            SnapshotFormat::Collapsed => Some(ProfileFormat::Collapsed),
            SnapshotFormat::Speedscope => Some(ProfileFormat::Speedscope),
            SnapshotFormat::Pprof => Some(ProfileFormat::Pprof),
            SnapshotFormat::Table | SnapshotFormat::Json | SnapshotFormat::Heap => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SnapshotSort {
    /// Own bytes (sys.getsizeof), largest first.
    Bytes,
    /// Retained bytes (what freeing the type's instances would free), largest first.
    Retained,
}

#[derive(Args)]
struct WhyArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The type, as the snapshot names it (`__main__.Session`, `dict`).
    #[arg(short = 't', long = "type")]
    type_name: String,
    /// Path groups (and retainers) to show.
    #[arg(long, default_value = "10")]
    max_paths: usize,
    #[arg(short, long, value_enum, default_value = "table")]
    format: WhyFormat,
    /// Also write the paths as a Graphviz graph to this file.
    #[arg(long)]
    dot: Option<PathBuf>,
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    blocking: BlockingArgs,
    /// Show each frame's file as its whole path, not relative to the target's sys.path (a
    /// heap dump keeps the form it was written with).
    #[arg(long)]
    full_filenames: bool,
    #[command(flatten)]
    trace: TraceWindowArgs,
}

/// `--tracemalloc N` on `snapshot --by allocation` and `why`: exact allocation sites on a
/// process that does not trace (the opt-in write `record --tracemalloc` makes).
#[derive(Args)]
struct TraceWindowArgs {
    /// On a running process that does not trace: start its tracemalloc keeping N frames,
    /// trace for --trace-for seconds, read, then stop it (its traces are freed). What it
    /// allocated in that window is named by line; what it held before reads "allocated before
    /// tracing began". A process that traces already is read at once and left tracing.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    tracemalloc: Option<u32>,
    /// Seconds to trace before reading, with --tracemalloc (Ctrl-C reads at once).
    #[arg(long, value_name = "S", default_value = "10", requires = "tracemalloc")]
    trace_for: f64,
}

impl TraceWindowArgs {
    fn window(&self) -> anyhow::Result<Option<crate::live_tracing::TraceWindow>> {
        let Some(frames) = self.tracemalloc else {
            return Ok(None);
        };
        Ok(Some(crate::live_tracing::TraceWindow {
            frames,
            window: seconds("trace-for", self.trace_for, 0.0)?,
        }))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum WhyFormat {
    Table,
    Json,
}

#[derive(Args)]
struct SnapshotArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(short, long, value_enum, default_value = "table")]
    format: SnapshotFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Rows in the table.
    #[arg(long, default_value = "25")]
    top: usize,
    /// Count only objects the cyclic GC tracks (containers and instances): those on its lists
    /// — what gc.get_objects() lists, plus the objects gc.freeze() moved to its permanent
    /// generation (gc.get_freeze_count(); about 375 tuples on a stock 3.12) —, or on
    /// free-threaded builds those whose GC bits say TRACKED.
    #[arg(long)]
    gc_only: bool,
    #[command(flatten)]
    blocking: BlockingArgs,
    /// Do not show the paths of open files.
    #[arg(long)]
    no_paths: bool,
    /// Add a column (and JSON `retained_by_type`): per type, the bytes its instances retain
    /// together — what freeing them all would free (dominator tree over the heap graph).
    #[arg(long, conflicts_with_all = ["gc_only", "subprocesses", "by"])]
    retained: bool,
    /// Order of the types (table and JSON): by their own bytes, or by what they retain
    /// (MAT's dominator view: a DataFrame of 48 bytes that keeps 77 MiB comes first; implies
    /// --retained).
    #[arg(long, value_enum, default_value = "bytes", conflicts_with_all = ["gc_only", "subprocesses", "by"])]
    sort: SnapshotSort,
    /// What to attribute memory to: what keeps it alive (retention, the default) or the line
    /// that allocated it (allocation: read from the target's tracemalloc, which must be on —
    /// PYTHONTRACEMALLOC=N — or turned on for a while with --tracemalloc N).
    #[arg(long, value_enum, default_value = "retention")]
    by: snapshot::By,
    /// Also census every Python process under PID (forked workers, multiprocessing pools);
    /// other children are skipped with a note.
    #[arg(short, long, conflicts_with_all = ["core", "by"])]
    subprocesses: bool,
    /// Frames (the flamegraph's and the heap dump's thread roots, --by allocation's lines)
    /// show each file as its whole path, not relative to the target's sys.path.
    #[arg(long)]
    full_filenames: bool,
    #[command(flatten)]
    trace: TraceWindowArgs,
}

#[derive(Args)]
struct RecordArgs {
    /// Process id of the Python process (decimal or 0x hex), or give the program to start.
    #[arg(short, long, value_parser = parse_pid)]
    pid: Option<i32>,
    /// Stop after this many seconds (default: until Ctrl-C or the target exits).
    #[arg(short, long, value_name = "S")]
    duration: Option<f64>,
    /// Seconds between censuses.
    #[arg(long, value_name = "S", default_value = "1")]
    interval: f64,
    /// Output file (default: pymemspy-PID.svg, or the format's extension).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Stack samples per second for the allocation flamegraph (0: none).
    #[arg(short, long, value_name = "HZ", default_value = "100")]
    rate: f64,
    /// Output format (default: from the -o extension, else svg; `flamegraph` is svg, `raw`
    /// is collapsed).
    #[arg(short, long, value_enum)]
    format: Option<RecordFormat>,
    /// Types stored per sample: the N largest by bytes and by count (bounds memory).
    #[arg(long, value_name = "N", default_value_t = recording::DEFAULT_TOP_TYPES)]
    top_types: usize,
    /// Rows in the summary printed at the end.
    #[arg(long, default_value = "10")]
    top: usize,
    #[command(flatten)]
    blocking: BlockingArgs,
    /// Count only objects on the GC's lists, gc.freeze()'s permanent generation included (no
    /// str, int, float, ...). Not cheaper: the complete census scans the arenas on every core
    /// and is as fast.
    #[arg(long)]
    gc_only: bool,
    #[command(flatten)]
    resolve: ResolveArgs,
    /// Record every Python process under the target (gunicorn/celery/uwsgi workers, a
    /// multiprocessing pool), following workers as they come and go. Writes JSON
    /// (pymemspy.record-tree/1, default pymemspy-tree-PID.json) and a per-process summary; no
    /// allocation flamegraph in this mode (--rate is ignored: record one worker with --pid for
    /// that).
    #[arg(short, long)]
    subprocesses: bool,
    /// Exact allocation flamegraph from the target's own tracemalloc, keeping N frames per
    /// allocation. A program pymemspy starts gets it by default (PYTHONTRACEMALLOC=16; its
    /// cost: docs/performance.md); with --pid, pymemspy turns the running process's tracing on for the
    /// recording and off at its end (on 3.14+ through PEP 768, before by a call at a safe point
    /// by ptrace: the only time pymemspy writes to a process). 0 is --sample. A process that
    /// traces already is read exactly without this, and left tracing.
    #[arg(long, value_name = "N")]
    tracemalloc: Option<u32>,
    /// Sampled allocation flamegraph, from outside only (the default with --pid): no tracing in
    /// the target, at no cost to it; approximate (short-lived leakers on busy threads are
    /// missed).
    #[arg(long, conflicts_with = "tracemalloc")]
    sample: bool,
    /// Show each frame's file as its whole path, not relative to the target's sys.path
    /// (`render (/srv/app/leaky.py:50)` instead of `render (leaky.py:50)`).
    #[arg(long, conflicts_with = "subprocesses")]
    full_filenames: bool,
    #[command(flatten)]
    program: ProgramArgs,
}

/// py-spy stops the target while it samples unless told `--nonblocking`; pymemspy never stops
/// it unless told `--pause`. Both words are accepted, so a py-spy habit does no harm.
#[derive(Args, Clone, Copy)]
struct BlockingArgs {
    /// Stop the target (ptrace) during each census, for consistent pictures of a busy process
    /// (py-spy's default "blocking" mode; pymemspy does not stop the target without it, but for
    /// `record --tracemalloc`, which stops the program it started at each reading of its
    /// tracemalloc tables).
    #[arg(long, conflicts_with = "nonblocking")]
    pause: bool,
    /// Never stop the target: pymemspy's default already (accepted for py-spy's habit).
    #[arg(long)]
    nonblocking: bool,
}

#[derive(Args)]
struct TopArgs {
    /// Process id of the Python process (decimal or 0x hex), or give the program to start.
    #[arg(short, long, value_parser = parse_pid)]
    pid: Option<i32>,
    /// Seconds between censuses (py-spy's `--delay` means the same).
    #[arg(long, visible_alias = "delay", value_name = "S", default_value = "1")]
    interval: f64,
    /// Count only objects on the GC's lists, gc.freeze()'s permanent generation included (no
    /// str, int, float, ...).
    #[arg(long)]
    gc_only: bool,
    #[command(flatten)]
    blocking: BlockingArgs,
    #[command(flatten)]
    resolve: ResolveArgs,
    #[command(flatten)]
    program: ProgramArgs,
}

/// The program to start, as py-spy takes it (with or without `--` before it), and py-spy's
/// `-i/--idle`, which means nothing here.
#[derive(Args)]
struct ProgramArgs {
    /// Accepted for py-spy's habit; every thread is always included.
    #[arg(short = 'i', long, hide = true)]
    idle: bool,
    /// The program to start: `pymemspy record -o app.svg python3 app.py` (a `--` before it is
    /// allowed); stopped when the recording or the view ends.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PYTHON_PROGRAM"
    )]
    command: Vec<String>,
}

/// Which process: `--pid`, or a program to start (after `--` or not), never both.
fn source(pid: Option<i32>, command: &[String], verb: &str) -> anyhow::Result<Source> {
    match (pid, command.is_empty()) {
        (Some(pid), true) => Ok(Source::Pid(pid)),
        (None, false) => Ok(Source::Command(command.to_vec())),
        (Some(_), false) => Err(Error::Usage(format!(
            "give either --pid or a program to start, not both (`{}` was read as the program)",
            command.join(" ")
        ))
        .into()),
        (None, true) => Err(Error::Usage(format!(
            "which process? `pymemspy {verb} --pid PID`, or a program: `pymemspy {verb} python3 app.py`"
        ))
        .into()),
    }
}

/// Refuse an output file that could not be written before any work, in every command alike.
fn check_output(output: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = output.filter(|p| p.as_os_str() != "-") else {
        return Ok(());
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "-o {}: directory {} does not exist",
            path.display(),
            dir.display()
        ))
        .into());
    }
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Table,
    Json,
}

#[derive(Args)]
struct DiffArgs {
    /// The earlier snapshot or recording (JSON).
    a: PathBuf,
    /// The later snapshot or recording (JSON).
    b: PathBuf,
    /// Heap dumps only: a third, later dump; then only the objects new in `b` and still alive
    /// in `c` are listed (what a slow leak keeps, not what churns).
    c: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value = "table")]
    format: DiffFormat,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Rows per section of the table.
    #[arg(long, default_value = "25")]
    top: usize,
}

pub fn run() -> anyhow::Result<()> {
    // clap's whole message: the valid values, "similar argument" and "use `--`" tips, and the
    // subcommand's usage. Usage errors exit with 2 (see `exit_code`).
    let cli = Cli::try_parse().unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Snapshot(a) => snapshot_cmd(a),
        Command::Record(a) => record_cmd(a),
        Command::Diff(a) => diff_cmd(a),
        Command::Top(a) => top_cmd(a),
        Command::Render(a) => render::profile::render_command(a),
        Command::Why(a) => why_cmd(a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "pymemspy", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            render::output::write(None, &out)
        }
        Command::Dump(a) => stacks::dump_cmd(a),
        Command::AllocProfile(a) => stacks::alloc_profile_cmd(a),
        Command::Exporter(a) => crate::exporter::run(a),
        Command::Layout(t) => {
            if t.heap.is_some() {
                return Err(Error::Usage(
                    "layout reads a live process or a core, not --heap".into(),
                )
                .into());
            }
            let target = open_target(&t)?;
            let py = crate::python::resolve(&target, &t.resolve_options())?;
            let out = serde_json::json!({
                "binary": py.binary.path,
                "runtime": format!("{:#x}", py.runtime),
                "runtime_found_by": py.binary.runtime_found_by,
                "version_found_by": py.version_found_by,
                "interpreters": py.interpreters.iter().map(|i| format!("{i:#x}")).collect::<Vec<_>>(),
                "layout": py.layout,
                "warnings": py.warnings,
            });
            render::output::write(None, &render::json::to_json(&out)?)
        }
    }
}

/// `pymemspy snapshot`: the flags checked, then the heap, tree, allocation or census snapshot they
/// ask for. Long: one refusal per flag combination that does not go together, each with its
/// message, then the dispatch; kept together so every refusal reads in one place.
fn snapshot_cmd(a: SnapshotArgs) -> anyhow::Result<()> {
    check_output(a.output.as_deref())?;
    let allocation = matches!(a.by, snapshot::By::Allocation);
    if a.target.heap.is_some() && (a.gc_only || a.subprocesses || allocation) {
        return Err(Error::Usage(
            "--heap reads a heap dump: --gc-only, --subprocesses and --by allocation need the \
             live process"
                .into(),
        )
        .into());
    }
    if a.trace.tracemalloc.is_some() && (!allocation || a.target.heap.is_some()) {
        return Err(Error::Usage(
            "--tracemalloc with snapshot reads allocation sites: add --by allocation (and \
             --pid); `why --tracemalloc N` shows them per path"
                .into(),
        )
        .into());
    }
    let frames_shown = allocation
        || a.format.profile_format().is_some()
        || matches!(a.format, SnapshotFormat::Heap);
    if a.full_filenames && !frames_shown {
        // A listed flag does something or is refused: the census table and JSON show no frame.
        return Err(Error::Usage(
            "--full-filenames applies where frames are shown: a flamegraph format, \
             --format heap or --by allocation (the census table and JSON show none)"
                .into(),
        )
        .into());
    }
    let retained = a.retained || a.sort == SnapshotSort::Retained;
    if a.sort == SnapshotSort::Retained && a.format.profile_format().is_some() {
        return Err(Error::Usage(
            "--sort retained orders the table or JSON; a flamegraph is laid out by its paths"
                .into(),
        )
        .into());
    }
    if a.target.heap.is_some()
        || matches!(a.format, SnapshotFormat::Heap)
        || (retained && a.format.profile_format().is_none())
    {
        return heap::snapshot_heap_cmd(
            &a.target,
            SnapshotOptions {
                resolve: a.target.resolve_options(),
                pause: a.blocking.pause,
                no_paths: a.no_paths,
                full_filenames: a.full_filenames,
                ..Default::default()
            },
            a.format.profile_format(),
            match a.format {
                SnapshotFormat::Json => heap::Kind::Json,
                SnapshotFormat::Heap => heap::Kind::Heap,
                _ => heap::Kind::Table,
            },
            heap::Retained {
                compute: retained,
                sort: a.sort == SnapshotSort::Retained,
            },
            a.output.as_deref(),
            a.top,
        );
    }
    let opts = SnapshotOptions {
        resolve: a.target.resolve_options(),
        pause: a.blocking.pause,
        gc_only: a.gc_only,
        no_paths: a.no_paths,
        full_filenames: a.full_filenames,
        ..Default::default()
    };
    let out = snapshot::Output {
        profile: a.format.profile_format(),
        json: matches!(a.format, SnapshotFormat::Json),
        path: a.output.as_deref(),
        top: a.top,
    };
    if allocation {
        snapshot::allocations_cmd(&a.target, opts, &out, a.trace.window()?)
    } else if a.subprocesses {
        snapshot::snapshot_tree_cmd(a.target.pid(), &opts, &out)
    } else {
        snapshot::snapshot_target_cmd(&a.target, opts, &out)
    }
}

fn top_cmd(a: TopArgs) -> anyhow::Result<()> {
    if !(a.interval > 0.0 && a.interval <= 86_400.0) {
        return Err(Error::Usage(format!(
            "--interval must be between 0 and 86400 seconds, not {}",
            a.interval
        ))
        .into());
    }
    crate::top::run(crate::top::TopOptions {
        source: source(a.pid, &a.program.command, "top")?,
        interval: Duration::from_secs_f64(a.interval),
        snapshot: SnapshotOptions {
            gc_only: a.gc_only,
            pause: a.blocking.pause,
            resolve: a.resolve.options(),
            ..Default::default()
        },
    })
}

fn why_cmd(a: WhyArgs) -> anyhow::Result<()> {
    check_output(a.output.as_deref())?;
    check_output(a.dot.as_deref())?;
    if let Some(heap) = &a.target.heap {
        if a.trace.tracemalloc.is_some() {
            return Err(Error::Usage(
                "--tracemalloc starts a running process's tracing: a heap dump keeps the \
                 sites its process traced; drop --tracemalloc"
                    .into(),
            )
            .into());
        }
        let dump = crate::analysis::retention::heap_file::load(heap)?;
        let sites = dump.sites.as_ref().map(|s| s.to_sites());
        let mut report = heap::why_on_graph(
            dump.graph,
            &a.type_name,
            a.max_paths,
            dump.pid,
            sites.as_ref(),
        );
        report.files = dump.files;
        return why_output(&a, &report);
    }
    let opts = SnapshotOptions {
        resolve: a.target.resolve_options(),
        pause: a.blocking.pause,
        full_filenames: a.full_filenames,
        ..Default::default()
    };
    let target = open_target(&a.target)?;
    let pid = target.pid;
    let mut session = Session::from_target(target, opts)?;
    let live = match a.trace.window()? {
        Some(w) => w.open(&session)?,
        None => None,
    };
    // Where the objects were allocated, when the target traces (tracemalloc).
    let traces = crate::heap::tracemalloc::locate(
        &session.target.memory,
        &session.target.spans_now(),
        &session.py,
    )
    .ok();
    let (graph, asked, changed, files) = session.with_objects(|view, py, types, objects| {
        // The graph once (address order, bulk reads), then the tree and the dominators on it.
        let mut src = LiveSource::new(view, py, types).with_full_filenames(a.full_filenames);
        let mut phases = crate::analysis::phases::Phases::start("why");
        crate::heap::objects::containers::take_changed_while_read();
        let graph = crate::analysis::retention::heap_graph::capture(&mut src, objects);
        let changed = crate::heap::objects::containers::take_changed_while_read();
        phases.lap("graph captured");
        let asked = crate::analysis::retention::alloc_sites::objects_of_type(&graph, &a.type_name);
        (graph, asked, changed, std::mem::take(&mut src.files))
    })?;
    // Read after the objects, on its own: a consistent reading of the traces table may need
    // a few tries (`heap::allocation_sites`).
    let sites = traces.as_ref().and_then(|tl| {
        crate::analysis::retention::alloc_sites::allocation_sites(&session, tl, asked)
    });
    // Read: tracing pymemspy started for this ends now (its traces are freed).
    crate::live_tracing::end_window(live, pid);
    let (sites, warning) = sites.map_or((None, None), |(s, w)| (Some(s), w));
    let mut report = heap::why_on_graph(graph, &a.type_name, a.max_paths, pid, sites.as_ref());
    report.warnings.extend(warning);
    report.files = files;
    if changed > 0 {
        // A count read across a change (x8993 of 9000) is not printed as if exact.
        report.warnings.push(format!(
            "{changed} deque{} changed while being read (the target ran on): counts through {} \
             may be off; --pause reads them exactly",
            if changed == 1 { "" } else { "s" },
            if changed == 1 { "it" } else { "them" }
        ));
    }
    why_output(&a, &report)
}

fn why_output(a: &WhyArgs, report: &why::WhyReport) -> anyhow::Result<()> {
    if let Some(dot) = &a.dot {
        render::output::write(Some(dot), crate::render::dot::why(report).as_bytes())?;
    }
    let bytes = match a.format {
        WhyFormat::Json => render::json::to_json(report)?,
        WhyFormat::Table => render::table::why_table(report).into_bytes(),
    };
    render::output::write(a.output.as_deref(), &bytes)
}

fn seconds(what: &str, s: f64, min: f64) -> anyhow::Result<Duration> {
    if !s.is_finite() || s < min || s > 1e7 {
        return Err(Error::Usage(format!("--{what} must be a number of seconds ≥ {min}")).into());
    }
    Ok(Duration::from_secs_f64(s))
}

/// `pymemspy record`: the flags checked and their defaults decided, then one process or a tree
/// recorded and written. Long: every flag checked and defaulted before the recording starts (a
/// refusal must not come after minutes of recording), then the recording and where it is written.
fn record_cmd(a: RecordArgs) -> anyhow::Result<()> {
    let source = source(a.pid, &a.program.command, "record")?;
    let interval = seconds("interval", a.interval, 0.01)?;
    if !(0.0..=10_000.0).contains(&a.rate) {
        return Err(
            Error::Usage("--rate must be between 0 (no stack sampling) and 10000".into()).into(),
        );
    }
    let duration = a
        .duration
        .map(|d| seconds("duration", d, 0.0))
        .transpose()?;
    // Refuse an output we could not write before recording, not after.
    check_output(a.output.as_deref())?;
    // First Ctrl-C: stop and write what was recorded. A second one: leave at once.
    let stop = crate::interrupt::first_ctrl_c()?;
    if a.tracemalloc.is_some_and(|n| n > 65535) {
        return Err(Error::Usage(
            "--tracemalloc N keeps N frames per allocation: 1 to 65535 (0 samples instead)".into(),
        )
        .into());
    }
    if a.subprocesses && a.tracemalloc.is_some_and(|n| n > 0) {
        return Err(Error::Usage(
            "--subprocesses records no allocation flamegraph: --tracemalloc applies to one \
             process (record a worker with --pid WORKER --tracemalloc 16)"
                .into(),
        )
        .into());
    }
    // Exact by default where pymemspy starts the program; sampled by default on a running
    // process (read-only unless asked).
    let tracemalloc = match (a.sample, a.tracemalloc, &source) {
        (true, _, _) | (_, Some(0), _) => None,
        (_, Some(n), _) => Some(n),
        (_, None, Source::Command(_)) if !a.subprocesses && a.rate > 0.0 => {
            Some(crate::record::launch::DEFAULT_FRAMES)
        }
        (_, None, _) => None,
    };
    if let (Some(asked), Some(path)) = (a.format, a.output.as_deref()) {
        // `-o x.svg --format collapsed` writes folded text into a .svg: say so before the
        // recording, not silently after. A .txt or a .json named for speedscope is no clash.
        let named = RecordFormat::from_path(path);
        let generic = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
            || (asked == RecordFormat::Speedscope && named == Some(RecordFormat::Json));
        if let Some(named) = named.filter(|&n| n != asked && !generic) {
            eprintln!(
                "pymemspy: warning: -o {} is named for {} but --format {} is written into it",
                path.display(),
                format_name(named),
                format_name(asked)
            );
        }
    }
    let tree_format = a
        .format
        .or_else(|| a.output.as_deref().and_then(RecordFormat::from_path));
    if a.subprocesses && tree_format.is_some_and(|f| f != RecordFormat::Json) {
        return Err(Error::Usage(
            "--subprocesses writes JSON (pymemspy.record-tree/1) and a summary; flamegraphs and \
             the HTML page are per process: record one worker with --pid WORKER"
                .into(),
        )
        .into());
    }
    let opts = RecordOptions {
        source,
        duration,
        interval,
        snapshot: SnapshotOptions {
            resolve: a.resolve.options(),
            pause: a.blocking.pause,
            gc_only: a.gc_only,
            memory_report: false,
            ..Default::default()
        },
        top_types: a.top_types,
        stop,
        rate: a.rate,
        tracemalloc,
        full_filenames: a.full_filenames,
    };
    if a.subprocesses {
        return record_tree_cmd(opts, a.output.as_deref(), a.top);
    }
    let doc = crate::record::record(opts)?;
    let format = a
        .format
        .or_else(|| a.output.as_deref().and_then(RecordFormat::from_path))
        .unwrap_or_default();
    let path = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("pymemspy-{}.{}", doc.pid, format.extension())));
    let json = path.with_extension("json");
    if format.profile_format().is_some() && path.as_os_str() != "-" && json != path {
        // Record once, render later: the whole recording goes beside the flamegraph.
        render::output::write(Some(&json), &RecordFormat::Json.render(&doc)?)?;
        eprintln!("pymemspy: recording written to {}", json.display());
    }
    render::output::write(Some(&path), &format.render(&doc)?)?;
    let shown = if path.as_os_str() == "-" {
        "standard output".to_string()
    } else {
        path.display().to_string()
    };
    eprint!("{}", render::summary::record_summary(&doc, &shown, a.top));
    Ok(())
}

/// `record --subprocesses`: the tree's recording as JSON, its summary on stderr.
fn record_tree_cmd(opts: RecordOptions, output: Option<&Path>, top: usize) -> anyhow::Result<()> {
    let doc = crate::record::tree::record_tree(opts)?;
    let path = output.map_or_else(
        || PathBuf::from(format!("pymemspy-tree-{}.json", doc.root_pid)),
        Path::to_path_buf,
    );
    let mut bytes = serde_json::to_vec(&doc)?;
    bytes.push(b'\n');
    render::output::write(Some(&path), &bytes)?;
    let shown = if path.as_os_str() == "-" {
        "standard output".to_string()
    } else {
        path.display().to_string()
    };
    eprint!(
        "{}",
        render::summary::record_tree_summary(&doc, &shown, top)
    );
    Ok(())
}

fn diff_cmd(a: DiffArgs) -> anyhow::Result<()> {
    check_output(a.output.as_deref())?;
    if crate::analysis::retention::heap_file::is_heap_dump(&a.a) {
        return heap::diff_cmd(
            &a.a,
            &a.b,
            a.c.as_deref(),
            matches!(a.format, DiffFormat::Json),
            a.output.as_deref(),
            a.top,
        );
    }
    if a.c.is_some() {
        return Err(Error::Usage(
            "a third file is for heap dumps (`snapshot --format heap`); JSON snapshots and \
             recordings are compared two at a time"
                .into(),
        )
        .into());
    }
    let d = diff::diff(&diff::load(&a.a)?, &diff::load(&a.b)?);
    let bytes = match a.format {
        DiffFormat::Json => render::json::to_json(&d)?,
        DiffFormat::Table => render::summary::diff_table(&d, a.top).into_bytes(),
    };
    render::output::write(a.output.as_deref(), &bytes)
}

/// A record format as `--format` spells it.
fn format_name(f: RecordFormat) -> String {
    f.to_possible_value()
        .map_or_else(|| "?".into(), |v| v.get_name().to_string())
}
