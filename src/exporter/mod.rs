//! `pymemspy exporter`: every followed Python process's heap as Prometheus metrics.
//!
//! `discovery` finds the processes, `scheduler` takes censuses in a background thread within a
//! CPU budget, `model` bounds what is kept, `metrics` turns the latest figures into series at
//! each scrape, `encode` writes the text or OpenMetrics format, `http` serves `/metrics`.

mod discovery;
mod encode;
mod http;
mod metrics;
mod model;
mod scheduler;

use crate::error::Error;
use clap::Args;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ExporterArgs {
    /// Address to serve /metrics on.
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: String,
    /// Follow this process (repeatable). Default: every Python process that can be read,
    /// followed as processes start and exit.
    #[arg(short, long = "pid")]
    pids: Vec<i32>,
    /// Follow only Python processes whose command line matches this regular expression.
    #[arg(long = "match", value_name = "REGEX", conflicts_with = "pids")]
    matching: Option<String>,
    /// How often each process is censused and processes are looked for (e.g. 15s, 1m).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Types exported per process (the largest by bytes), plus one `(other)` for the rest.
    #[arg(long, default_value = "20", value_parser = clap::value_parser!(u16).range(1..=500))]
    top_types: u16,
    /// Fraction of one core the censuses may use on average; processes are censused less
    /// often than --interval when they would use more (1 = no limit).
    #[arg(long, default_value = "0.02")]
    cpu_budget: f64,
    /// Add a label to every process's series (repeatable): `--label cluster=eu1`.
    /// `--label service=NAME` replaces the service name taken from the command line.
    #[arg(long = "label", value_name = "NAME=VALUE")]
    labels: Vec<String>,
    /// MiB of target memory one census may hold at once.
    #[arg(long, default_value = "64")]
    cache_mib: u64,
}

pub fn run(a: ExporterArgs) -> anyhow::Result<()> {
    // A pid that names no process is a typo, not a target that exited: say so at once.
    if let Some(&pid) = a
        .pids
        .iter()
        .find(|&&p| p <= 0 || !std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        return Err(Error::NoSuchProcess(pid).into());
    }
    let selection = if !a.pids.is_empty() {
        discovery::Selection::Pids(a.pids.clone())
    } else {
        let re = a
            .matching
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| Error::Usage(format!("--match: not a valid regular expression: {e}")))?;
        discovery::Selection::All(re)
    };
    if !(a.cpu_budget > 0.0 && a.cpu_budget.is_finite()) {
        return Err(Error::Usage("--cpu-budget must be above 0 (e.g. 0.02)".into()).into());
    }
    let labels = a
        .labels
        .iter()
        .map(|l| parse_label(l))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = scheduler::Config {
        selection,
        interval: a.interval.max(Duration::from_millis(100)),
        top_types: a.top_types as usize,
        cpu_budget: a.cpu_budget.min(1.0),
        labels,
        cache_budget: a.cache_mib.clamp(4, 4096) << 20,
    };
    let server = tiny_http::Server::http(&a.listen).map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {} ({e}): pick another address with --listen",
            a.listen
        ))
    })?;
    let shared = Arc::new(Mutex::new(scheduler::Shared::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let top_types = cfg.top_types;
    scheduler::spawn(cfg, shared.clone(), stop.clone());
    eprintln!("pymemspy exporter: serving http://{}/metrics", a.listen);
    http::serve(server, &shared, top_types);
    Ok(())
}

/// `name=value`, the name a valid Prometheus label name not used by the exporter itself.
fn parse_label(s: &str) -> Result<(String, String), Error> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Error::Usage(format!("--label {s}: expected NAME=VALUE")))?;
    let valid = k
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if k.is_empty() || !valid || k.starts_with("__") {
        return Err(Error::Usage(format!(
            "--label {s}: `{k}` is not a label name (letters, digits, _; not starting with a \
             digit or __)"
        )));
    }
    if [
        "pid",
        "type",
        "python",
        "role",
        "parent",
        "generation",
        "part",
        "reason",
        "kind",
    ]
    .contains(&k)
    {
        return Err(Error::Usage(format!(
            "--label {s}: `{k}` is set by the exporter itself"
        )));
    }
    Ok((k.to_string(), v.to_string()))
}
