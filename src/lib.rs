//! pymemspy: where is the memory of a running CPython process?
//!
//! The pipeline is the module tree: `process` (reading the target) → `python` (which build,
//! which layout) → `heap` (walking objects) → `analysis` (the session, census, growth,
//! retention) → `render` (tables, JSON, flamegraphs). `profile` is the model of a flamegraph
//! that analyses build and `render` draws; `record`, `top`, `exporter` and `live_tracing` are
//! the commands' engines; `cli` parses a command line and runs one.
//!
//! The binary is `cli::run` on top of this library; other Rust tools (and tests that need no
//! CLI) call the same API:
//!
//! ```no_run
//! use pymemspy::{Session, SnapshotOptions};
//! # fn main() -> anyhow::Result<()> {
//! // Attach (read-only), resolve the build's layout, count every live object by type.
//! let mut session = Session::open(4242, SnapshotOptions::default())?;
//! let report = session.census()?;
//! for t in report.census.types.iter().take(5) {
//!     println!("{} {} {}", t.name, t.count, t.bytes);
//! }
//! # Ok(())
//! # }
//! ```

pub mod analysis;
pub mod atomic_file;
pub mod cli;
pub mod error;
pub mod exporter;
pub mod heap;
pub mod interrupt;
pub mod live_tracing;
pub mod process;
pub mod profile;
pub mod python;
pub mod record;
pub mod render;
pub mod top;

/// Attach and census: a session on a live process or a core file, and one snapshot.
pub use analysis::census::snapshot::{take as snapshot, take_from as snapshot_of, Snapshot};
/// Why objects of a type are alive: the retention report on a captured heap graph.
pub use analysis::retention::why::WhyReport;
pub use analysis::session::{CensusReport, Session, SnapshotOptions};
/// Errors with an exit status per kind.
pub use error::Error;
/// A process or core file to read.
pub use process::Target;
/// The flamegraph model and its formats (SVG, collapsed, speedscope, pprof).
pub use profile::Profile;
/// Growth over time and the allocation flamegraph.
pub use record::{record, RecordOptions};
pub use render::profile::{render as render_profile, ProfileFormat};
