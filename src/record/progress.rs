//! The live progress line on stderr: elapsed time, samples, RSS and the top growers. Drawn only
//! when stderr is a terminal; otherwise the recorder is quiet until its summary.

use crate::analysis::timeline::recording::Recording;
use crate::render::table::human_bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `what`: "pid 42", "the tree under pid 42".
    pub fn new(what: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {elapsed_precise} {prefix} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!("recording {what} (Ctrl-C stops and writes)"));
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    pub fn update(&self, rec: &Recording) {
        let Some(bar) = &self.bar else { return };
        let mut msg = format!("· {} samples", rec.samples_taken());
        if let Some(rss) = rec.latest_rss() {
            msg.push_str(&format!(" · RSS {}", human_bytes(rss)));
        }
        let growers = rec.quick_growers(3);
        if !growers.is_empty() {
            let list: Vec<String> = growers
                .iter()
                .map(|(name, rate, db)| {
                    format!("{name} +{} ({rate:+.0}/s)", human_bytes(*db as u64))
                })
                .collect();
            msg.push_str(&format!(" · growing: {}", list.join(", ")));
        }
        bar.set_message(msg);
    }

    /// Any other message (the process-tree recorder's).
    pub fn set(&self, msg: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
