//! End-of-run text for people: what grew during a recording, and what differs between two
//! censuses. Type names only, never object values.

use super::table::{human_bytes, thousands};
use crate::analysis::timeline::diff::Diff;
use crate::analysis::timeline::growth::{
    Thresholds, Trend, TypeGrowth, BYTES_THRESHOLDS, COUNT_THRESHOLDS, MIN_SAMPLES,
};
use crate::analysis::timeline::record_tree::{ProcessRecording, ProcessState, RecordTreeDoc};
use crate::analysis::timeline::recording::{self, EndReason, RecordDoc};
use std::fmt::Write;

/// "+1.5 MiB" / "-320 B".
pub fn signed_bytes(b: i64) -> String {
    let sign = if b < 0 { "-" } else { "+" };
    format!("{sign}{}", human_bytes(b.unsigned_abs()))
}

/// "+12,000" / "-3".
pub fn signed_count(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "+" };
    format!("{sign}{}", thousands(n.unsigned_abs()))
}

/// A rate per second, rounded for reading: "+2,000/s", "+0.25/s".
pub fn signed_rate(r: f64) -> String {
    if !r.is_finite() || r == 0.0 {
        return "0/s".into();
    }
    let sign = if r < 0.0 { "-" } else { "+" };
    let a = r.abs();
    if a >= 10.0 {
        format!("{sign}{}/s", thousands(a.round() as u64))
    } else {
        format!("{sign}{a:.2}/s")
    }
}

/// The verdict of a type in words: one trend when count and bytes agree.
pub fn verdict(g: &TypeGrowth) -> String {
    // "flat" beside a row that says +26.1 KiB reads as a contradiction: the change is real but
    // under the noise floor the trend test uses (16 objects or 16 KiB, or 0.5% of the largest
    // value), so say that.
    let floor = |th: &Thresholds, max: u64| th.min_rise.max(th.rel_floor * max as f64).round();
    let word = |trend: Trend, delta: i64, floor: String| {
        if trend == Trend::Flat && delta != 0 {
            format!("within noise (moved under {floor})")
        } else {
            trend.as_str().to_string()
        }
    };
    let count = word(
        g.trend,
        g.count_delta,
        thousands(floor(&COUNT_THRESHOLDS, g.count_max) as u64),
    );
    let bytes = word(
        g.bytes_trend,
        g.bytes_delta,
        human_bytes(floor(&BYTES_THRESHOLDS, g.bytes_max) as u64),
    );
    let both = if g.trend == g.bytes_trend && count == bytes || g.bytes_trend == Trend::TooShort {
        count
    } else {
        format!("count {count}, bytes {bytes}")
    };
    if g.suspect {
        format!("SUSPECT: {both}")
    } else {
        both
    }
}

fn end_reason(e: EndReason) -> &'static str {
    match e {
        EndReason::Duration => "duration reached",
        EndReason::Interrupted => "interrupted",
        EndReason::TargetExited => "target exited",
        EndReason::Failed => "censuses kept failing",
    }
}

/// The summary printed on stderr when a recording ends. Long: the summary's lines in the order they
/// print (heading, allocation flamegraph, growers, suspects, RSS, collector, warnings); each is a
/// few lines.
pub fn record_summary(doc: &RecordDoc, written_to: &str, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "pymemspy record: pid {} — Python {} — {} samples over {:.1} s (every {} s), {}",
        doc.pid,
        doc.python.version,
        doc.samples_taken,
        doc.duration_s,
        doc.interval_s,
        end_reason(doc.end_reason)
    );
    let _ = writeln!(o, "wrote {written_to}");
    if let Some(a) = &doc.allocations {
        if a.stacks.iter().all(|s| s.bytes == 0) {
            let _ = writeln!(o, "allocation flamegraph: {}", super::formats::NO_GROWTH);
        } else if a.mode == recording::SAMPLED {
            let _ = writeln!(o, "allocation flamegraph: {}", recording::SAMPLED_HINT);
            if let Some(share) = a.attributed_share {
                let _ = writeln!(
                    o,
                    "sampled growth charged to whole stacks: {:.1}% (the rest was read on \
                     stacks cut off, or with no stack known, and is left out)",
                    100.0 * share
                );
            }
        } else {
            let how = a
                .tracing_started_by
                .as_ref()
                .map(|h| format!(" (tracing started for the recording by {h}, stopped at its end)"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "allocation flamegraph: exact, from the target's own tracemalloc{how}"
            );
        }
    }
    let growers: Vec<&TypeGrowth> = doc
        .growth
        .iter()
        .filter(|g| g.bytes_delta > 0 || g.count_delta > 0)
        .take(top)
        .collect();
    if growers.is_empty() {
        let _ = writeln!(o, "\nno type grew");
    } else {
        let w = growers
            .iter()
            .map(|g| g.name.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 48);
        let _ = writeln!(
            o,
            "\n{:<w$} {:>11} {:>10} {:>12} {:>12}  verdict",
            "top growers", "count Δ", "count/s", "bytes Δ", "bytes/s"
        );
        for g in growers {
            let _ = writeln!(
                o,
                "{:<w$} {:>11} {:>10} {:>12} {:>12}  {}",
                shorten(&g.name, w),
                signed_count(g.count_delta),
                signed_rate(g.rate_per_s).trim_end_matches("/s"),
                signed_bytes(g.bytes_delta),
                signed_rate_bytes(g.bytes_per_s).trim_end_matches("/s"),
                verdict(g)
            );
        }
    }
    if doc.timeline.len() < MIN_SAMPLES {
        let _ = writeln!(
            o,
            "\n(no verdicts: {} samples, a trend needs at least {MIN_SAMPLES}; record longer or \
             with a shorter --interval)",
            doc.timeline.len()
        );
    }
    let suspects: Vec<String> = doc
        .suspects()
        .map(|g| {
            let what = if g.trend == Trend::Growing {
                format!("{} objects", signed_rate(g.rate_per_s))
            } else {
                signed_rate_bytes(g.bytes_per_s)
            };
            format!("{} ({what})", g.name)
        })
        .collect();
    let _ = writeln!(
        o,
        "\nleak suspects (steady growth): {}",
        if !suspects.is_empty() {
            suspects.join(", ")
        } else if doc.timeline.len() < MIN_SAMPLES {
            // Not judged is not "none".
            "not judged (too few samples)".to_string()
        } else {
            "none".to_string()
        }
    );
    if let Some(r) = &doc.rss {
        let _ = writeln!(
            o,
            "RSS: {} → {} ({}, {}; min {}, max {}): {}",
            human_bytes(r.first),
            human_bytes(r.last),
            signed_bytes(r.last as i64 - r.first as i64),
            signed_rate_bytes(r.bytes_per_s),
            human_bytes(r.min),
            human_bytes(r.max),
            r.trend.as_str()
        );
    }
    if let Some(g) = &doc.gc {
        let rates: Vec<String> = g
            .collections_per_s
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| format!("gen{i} {r:.1}/s")))
            .collect();
        let _ = writeln!(
            o,
            "collector: {}{}",
            match (g.enabled_at_start, g.enabled_at_end) {
                (true, true) => "enabled",
                (false, false) => "DISABLED (cycles are never freed)",
                (true, false) => "disabled during the recording",
                (false, true) => "enabled during the recording",
            },
            if rates.is_empty() {
                String::new()
            } else {
                format!(", collections {}", rates.join(", "))
            }
        );
    }
    for w in &doc.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}

/// Bytes per second: "+110.0 KiB/s".
pub fn signed_rate_bytes(r: f64) -> String {
    if !r.is_finite() {
        return "?".into();
    }
    format!("{}/s", signed_bytes(r.round() as i64))
}

fn shorten(name: &str, w: usize) -> String {
    if name.chars().count() <= w {
        return name.to_string();
    }
    let keep: String = name.chars().rev().take(w.saturating_sub(1)).collect();
    format!("…{}", keep.chars().rev().collect::<String>())
}

/// `pymemspy diff` as a table: growth first, then what shrank.
pub fn diff_table(d: &Diff, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "pymemspy diff\n  A: {}\n  B: {}", d.a, d.b);
    let _ = writeln!(
        o,
        "B − A: {} objects, {}\n",
        signed_count(d.objects_delta),
        signed_bytes(d.bytes_delta)
    );
    let row = |o: &mut String, t: &crate::analysis::timeline::diff::TypeDelta| {
        let _ = writeln!(
            o,
            "{:>12} {:>11} {:>12} {:>12}  {}",
            signed_bytes(t.bytes_delta),
            signed_count(t.count_delta),
            human_bytes(t.bytes_b),
            thousands(t.count_b),
            t.name
        );
    };
    let header = format!(
        "{:>12} {:>11} {:>12} {:>12}  type",
        "bytes Δ", "count Δ", "bytes (B)", "count (B)"
    );
    let grew: Vec<_> = d
        .types
        .iter()
        .filter(|t| t.bytes_delta > 0 || (t.bytes_delta == 0 && t.count_delta > 0))
        .collect();
    let shrank: Vec<_> = d
        .types
        .iter()
        .rev()
        .filter(|t| t.bytes_delta < 0 || (t.bytes_delta == 0 && t.count_delta < 0))
        .collect();
    for (title, list) in [("grew", grew), ("shrank", shrank)] {
        if list.is_empty() {
            let _ = writeln!(o, "{title}: none\n");
            continue;
        }
        let _ = writeln!(o, "{title} ({} types)\n{header}", list.len());
        for t in list.iter().take(top) {
            row(&mut o, t);
        }
        if list.len() > top {
            let _ = writeln!(
                o,
                "  … {} more (--top N, or --format json)",
                list.len() - top
            );
        }
        let _ = writeln!(o);
    }
    o
}

/// A process's lifetime within a tree recording: "whole recording", "new at 3.2 s",
/// "ended at 4.1 s", "new at 1.0 s, ended at 2.5 s".
fn lifetime(p: &ProcessRecording) -> String {
    let mut parts = Vec::new();
    if p.new {
        parts.push(format!("new at {:.1} s", p.first_seen_s));
    }
    match (p.state, p.ended_s) {
        (ProcessState::Exited, Some(t)) => parts.push(format!("ended at {t:.1} s")),
        (ProcessState::Failed, Some(t)) => parts.push(format!("given up at {t:.1} s")),
        _ => {}
    }
    if parts.is_empty() {
        "whole recording".into()
    } else {
        parts.join(", ")
    }
}

/// The summary printed on stderr when `record --subprocesses` ends: one line per process with
/// its lifetime and what grew in it, then the leak suspects across processes. Long: its parts in
/// the order they print (heading, one row per process, suspects across processes, notes and
/// warnings); each is a few lines.
pub fn record_tree_summary(doc: &RecordTreeDoc, written_to: &str, top: usize) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "pymemspy record --subprocesses: root pid {} — {} Python processes over {:.1} s (every \
         {} s), {}",
        doc.root_pid,
        doc.processes.len(),
        doc.duration_s,
        doc.interval_s,
        end_reason(doc.end_reason)
    );
    let _ = writeln!(o, "wrote {written_to}\n");
    let _ = writeln!(
        o,
        "{:>8} {:<24} {:>7} {:>11} {:>11}  {:<24} command",
        "pid", "lifetime", "samples", "bytes Δ", "RSS Δ", "leak suspects"
    );
    for p in &doc.processes {
        let r = &p.recording;
        let delta =
            |f: fn(&crate::analysis::timeline::recording::TimelineEntry) -> Option<u64>| match (
                r.timeline.first().and_then(f),
                r.timeline.last().and_then(f),
            ) {
                (Some(a), Some(b)) => signed_bytes(b as i64 - a as i64),
                _ => "-".into(),
            };
        let suspects: Vec<&str> = r.suspects().map(|g| g.name.as_str()).collect();
        let suspects = match suspects.len() {
            0 if r.timeline.len() < MIN_SAMPLES => "(too few samples)".to_string(),
            0 => "none".to_string(),
            _ => suspects.join(", "),
        };
        let _ = writeln!(
            o,
            "{:>8} {:<24} {:>7} {:>11} {:>11}  {:<24} {}",
            format!("{}{}", if p.root { "*" } else { "" }, p.pid),
            lifetime(p),
            r.samples_taken,
            delta(|t| Some(t.bytes)),
            delta(|t| t.rss),
            suspects,
            shorten_end(&short_command(&p.cmdline), 60)
        );
    }
    let _ = writeln!(o, "(* the root)");
    // One denominator for every row: the processes recorded long enough for a verdict. A type
    // judged in fewer of them was missing from some of their samples (absent, or not among
    // the --top-types they kept).
    let judged = doc
        .processes
        .iter()
        .filter(|p| p.recording.timeline.len() >= MIN_SAMPLES)
        .count();
    if doc.suspects.is_empty() {
        let _ = writeln!(
            o,
            "\nleak suspects (steady growth) across processes: {}",
            if judged == 0 {
                "not judged (too few samples)"
            } else {
                "none"
            }
        );
    } else {
        let _ = writeln!(
            o,
            "\nleak suspects (steady growth) across processes ({judged} of {} processes \
             recorded long enough for a verdict):",
            doc.processes.len()
        );
        for s in doc.suspects.iter().take(top) {
            let places: Vec<String> = s
                .processes
                .iter()
                .map(|p| {
                    format!(
                        "pid {} ({} objects, {})",
                        p.pid,
                        signed_rate(p.rate_per_s),
                        signed_rate_bytes(p.bytes_per_s)
                    )
                })
                .collect();
            let unseen = judged.saturating_sub(s.judged_in);
            let _ = writeln!(
                o,
                "  {} — in {} of {judged}{}: {}",
                s.name,
                s.processes.len(),
                if unseen > 0 {
                    format!(" (not recorded long enough in {unseen})")
                } else {
                    String::new()
                },
                places.join(", ")
            );
        }
        if doc.suspects.len() > top {
            let _ = writeln!(o, "  … {} more in the JSON", doc.suspects.len() - top);
        }
    }
    for s in &doc.skipped {
        let _ = writeln!(o, "note: skipped pid {}: {}", s.pid, s.reason);
    }
    for n in &doc.notes {
        let _ = writeln!(o, "note: {n}");
    }
    for w in &doc.warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    for p in &doc.processes {
        for w in &p.recording.warnings {
            let _ = writeln!(o, "warning: pid {}: {w}", p.pid);
        }
    }
    o
}

/// The command line with its program's directory left out ("python3.12 app.py --workers 4").
fn short_command(cmdline: &str) -> String {
    let (program, rest) = cmdline.split_once(' ').unwrap_or((cmdline, ""));
    let program = program.rsplit('/').next().unwrap_or(program);
    if rest.is_empty() {
        program.to_string()
    } else {
        format!("{program} {rest}")
    }
}

/// Keep the start of a command line (the program and its first arguments say the most).
fn shorten_end(text: &str, w: usize) -> String {
    match text.char_indices().nth(w) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_signed_figures() {
        assert_eq!(signed_bytes(-2048), "-2.0 KiB");
        assert_eq!(signed_count(12000), "+12,000");
        assert_eq!(signed_rate(1999.6), "+2,000/s");
        assert_eq!(signed_rate(-0.5), "-0.50/s");
        assert_eq!(shorten("package.module.Class", 10), "…ule.Class");
    }

    /// The row that showed it (a str census on a Django process): +570 objects a steady
    /// climb, +26.1 KiB on 5.3 MiB of str, under the bytes' noise floor. The verdict must not
    /// call bytes "flat" beside +26.1 KiB.
    #[test]
    fn a_verdict_does_not_contradict_its_row() {
        let t: Vec<f64> = (0..12).map(f64::from).collect();
        let counts: Vec<u64> = (0..12).map(|i| 60_000 + i * 52).collect();
        let bytes: Vec<u64> = (0..12).map(|i| 5_560_000 + i * 2_430).collect();
        let g = TypeGrowth::analyse("str", &t, &counts, &bytes, None, None);
        assert_eq!((g.trend, g.bytes_trend), (Trend::Growing, Trend::Flat));
        assert_eq!(signed_bytes(g.bytes_delta), "+26.1 KiB");
        assert_eq!(
            verdict(&g),
            "SUSPECT: count growing, bytes within noise (moved under 27.3 KiB)"
        );
        // Nothing moved: still plain "flat".
        let flat = TypeGrowth::analyse("int", &t, &[500; 12], &[14_000; 12], None, None);
        assert_eq!(verdict(&flat), "flat");
    }

    #[test]
    fn shortens_command_lines_from_the_program() {
        let c = short_command("/usr/local/bin/python3.12 /srv/app/manage.py runserver");
        assert_eq!(c, "python3.12 /srv/app/manage.py runserver");
        assert_eq!(shorten_end(&c, 10), "python3.12…");
        assert_eq!(short_command("/usr/bin/python3"), "python3");
    }
}
