//! End-of-run text for people: what grew during a recording, and what differs between two
//! censuses. Type names only, never object values.

use super::table::{human_bytes, thousands};
use crate::analysis::diff::Diff;
use crate::analysis::growth::{Trend, TypeGrowth, MIN_SAMPLES};
use crate::analysis::recording::{EndReason, RecordDoc};
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
    let both = if g.trend == g.bytes_trend || g.bytes_trend == Trend::TooShort {
        g.trend.as_str().to_string()
    } else {
        format!(
            "count {}, bytes {}",
            g.trend.as_str(),
            g.bytes_trend.as_str()
        )
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

/// The summary printed on stderr when a recording ends.
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
        if suspects.is_empty() {
            "none".to_string()
        } else {
            suspects.join(", ")
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
    let row = |o: &mut String, t: &crate::analysis::diff::TypeDelta| {
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
}
