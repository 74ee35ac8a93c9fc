//! `record --format html`: one self-contained page (inline CSS and SVG, no script, no external
//! files) that shows what grew: process memory over time, a chart per top grower, and the table.

use super::summary::{signed_bytes, signed_count, signed_rate, signed_rate_bytes, verdict};
use super::svg::{esc, line_chart, sparkline, Chart, Series, Unit};
use super::table::{human_bytes, thousands};
use crate::analysis::timeline::growth::{Trend, TypeGrowth};
use crate::analysis::timeline::recording::{EndReason, RecordDoc};
use std::fmt::Write;

/// Charts drawn for the top growers.
const GROWER_CHARTS: usize = 12;
/// Rows in the summary table.
const TABLE_ROWS: usize = 60;

const RED: &str = "#d1495b";
const AMBER: &str = "#e09f3e";
const BLUE: &str = "#2e86ab";
const GREEN: &str = "#3b9c6e";
const GREY: &str = "#8a94a6";
const INK: &str = "#1f2a44";

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#f4f6fa;color:#1f2a44;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 28px 40px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:16px;margin:30px 0 10px}
.sub{color:#5b6478;margin:0 0 18px}
.sub code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#e8ecf3;padding:1px 5px;border-radius:4px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:14px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(20,30,60,.08)}
.card .k{color:#5b6478;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:22px;font-weight:650;margin-top:2px}
.card .d{font-size:13px;color:#5b6478}
.card.alert{border-left:4px solid #d1495b}
.card.ok{border-left:4px solid #3b9c6e}
.panel{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(20,30,60,.08)}
.grid3{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.mini h3{font-size:13.5px;margin:0;font-weight:600;word-break:break-all}
.mini .fig{font-size:12.5px;color:#5b6478;margin:2px 0 4px}
.badge{display:inline-block;font-size:11px;font-weight:650;padding:1px 7px;border-radius:9px;color:#fff;vertical-align:1px;white-space:nowrap}
.b-suspect{background:#d1495b}.b-step{background:#e09f3e}.b-churn{background:#2e86ab}
.b-flat,.b-too-short{background:#8a94a6}.b-shrinking{background:#3b9c6e}
svg.chart{display:block;width:100%;height:auto}
svg .grid{stroke:#e3e7ef;stroke-width:1}svg .grid.faint{stroke:#f0f2f6}
svg .baseline{stroke:#b8c0cf;stroke-width:1}
svg .axis{fill:#6b7488;font-size:11px}svg .legend{fill:#1f2a44;font-size:12px}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 2px rgba(20,30,60,.08)}
th,td{padding:6px 10px;text-align:right;border-bottom:1px solid #eef1f6;white-space:nowrap}
th{font-size:12px;color:#5b6478;font-weight:600;background:#fafbfd}
td.name,th.name{text-align:left;white-space:normal;word-break:break-all}
tr.suspect td{background:#fff5f6}
.warn{background:#fff8e6;border-left:4px solid #e09f3e;padding:8px 12px;border-radius:6px;margin:6px 0}
.how{color:#5b6478;font-size:13px}
"#;

fn badge(g: &TypeGrowth) -> String {
    let (class, text) = if g.suspect {
        ("suspect", "leak suspect".to_string())
    } else {
        let t = if g.trend == Trend::Flat && g.bytes_trend != Trend::TooShort {
            g.bytes_trend
        } else {
            g.trend
        };
        (t.as_str(), t.as_str().to_string())
    };
    format!(r#"<span class="badge b-{class}">{}</span>"#, esc(&text))
}

fn color(g: &TypeGrowth) -> &'static str {
    if g.suspect {
        return RED;
    }
    match g.trend {
        Trend::Step => AMBER,
        Trend::Churn => BLUE,
        Trend::Shrinking => GREEN,
        _ => GREY,
    }
}

/// (t, count, bytes) of one type, from the sample where it was first stored on.
fn type_series(doc: &RecordDoc, name: &str) -> Vec<(f64, f64, f64)> {
    let since = doc.types_tracked.get(name).copied().unwrap_or(0.0);
    doc.timeline
        .iter()
        .filter(|s| s.t >= since)
        .map(|s| {
            let [c, b] = s.types.get(name).copied().unwrap_or([0, 0]);
            (s.t, c as f64, b as f64)
        })
        .collect()
}

fn card(o: &mut String, class: &str, key: &str, value: &str, detail: &str) {
    let _ = write!(
        o,
        r#"<div class="card {class}"><div class="k">{}</div><div class="v">{}</div><div class="d">{}</div></div>"#,
        esc(key),
        esc(value),
        esc(detail)
    );
}

fn end_text(e: EndReason) -> &'static str {
    match e {
        EndReason::Duration => "ran for its duration",
        EndReason::Interrupted => "stopped with Ctrl-C",
        EndReason::TargetExited => "the target exited",
        EndReason::Failed => "censuses kept failing",
    }
}

/// The HTML page of a recording. Long: the page's sections in the order they render (heading,
/// cards, memory chart, growers, table, warnings, how to read); each is a few lines.
pub fn record_page(doc: &RecordDoc) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>pymemspy record: pid {}</title>\
         <style>{CSS}</style></head><body><main>",
        doc.pid
    );
    let _ = write!(
        o,
        r#"<h1>Memory growth of pid {}</h1><p class="sub">Python {} <code>{}</code> · started {} · {:.1} s, {} samples every {} s · {}</p>"#,
        doc.pid,
        esc(&doc.python.version),
        esc(&doc.python.executable),
        esc(&doc.started_at),
        doc.duration_s,
        doc.samples_taken,
        doc.interval_s,
        end_text(doc.end_reason)
    );

    // Headline figures.
    o.push_str(r#"<div class="cards">"#);
    let suspects: Vec<&TypeGrowth> = doc.suspects().collect();
    let (sv, sd) = match suspects.first() {
        None => ("none".to_string(), "no type grows steadily".to_string()),
        Some(g) => (
            suspects.len().to_string(),
            format!("top: {} {}", g.name, signed_rate(g.rate_per_s)),
        ),
    };
    card(
        &mut o,
        if suspects.is_empty() { "ok" } else { "alert" },
        "leak suspects",
        &sv,
        &sd,
    );
    match &doc.rss {
        Some(r) => card(
            &mut o,
            "",
            "resident memory (RSS)",
            &human_bytes(r.last),
            &format!(
                "{} since start · {} · {}",
                signed_bytes(r.last as i64 - r.first as i64),
                signed_rate_bytes(r.bytes_per_s),
                r.trend.as_str()
            ),
        ),
        None => card(&mut o, "", "resident memory (RSS)", "?", "not read"),
    }
    let (first, last) = (doc.timeline.first(), doc.timeline.last());
    let delta =
        |f: fn(&crate::analysis::timeline::recording::TimelineEntry) -> u64| match (first, last) {
            (Some(a), Some(b)) => f(b) as i64 - f(a) as i64,
            _ => 0,
        };
    card(
        &mut o,
        "",
        "Python objects",
        &thousands(last.map_or(0, |s| s.objects)),
        &format!("{} since start", signed_count(delta(|s| s.objects))),
    );
    card(
        &mut o,
        "",
        "their size (getsizeof)",
        &human_bytes(last.map_or(0, |s| s.bytes)),
        &format!("{} since start", signed_bytes(delta(|s| s.bytes))),
    );
    o.push_str("</div>");

    // Process memory over time.
    o.push_str(r#"<h2>Process memory over time</h2><div class="panel">"#);
    let rss: Vec<(f64, f64)> = doc
        .timeline
        .iter()
        .filter_map(|s| Some((s.t, s.rss? as f64)))
        .collect();
    let objects: Vec<(f64, f64)> = doc.timeline.iter().map(|s| (s.t, s.bytes as f64)).collect();
    o.push_str(&line_chart(&Chart {
        width: 1120.0,
        height: 250.0,
        unit: Unit::Bytes,
        series: vec![
            Series {
                label: "RSS (resident memory)".into(),
                color: INK,
                points: rss,
                area: true,
                dashed: false,
            },
            Series {
                label: "Python objects (sys.getsizeof)".into(),
                color: BLUE,
                points: objects,
                area: true,
                dashed: false,
            },
        ],
        legend: true,
    }));
    o.push_str("</div>");

    // One chart per top grower, suspects first.
    let mut growers: Vec<&TypeGrowth> = doc
        .growth
        .iter()
        .filter(|g| g.bytes_delta > 0 || g.count_delta > 0)
        .collect();
    growers.sort_by_key(|g| !g.suspect);
    growers.truncate(GROWER_CHARTS);
    let _ = write!(
        o,
        r#"<h2>Top growers <span class="how">(objects over time; red: steady growth, a leak suspect)</span></h2><div class="grid3">"#
    );
    if growers.is_empty() {
        o.push_str(r#"<div class="panel">No type grew during the recording.</div>"#);
    }
    for g in &growers {
        let series = type_series(doc, &g.name);
        // Chart what the verdict is about: bytes when only the bytes grow (a growing container).
        let by_bytes = g.trend != Trend::Growing && g.bytes_trend == Trend::Growing;
        let points: Vec<(f64, f64)> = series
            .iter()
            .map(|&(t, c, b)| (t, if by_bytes { b } else { c }))
            .collect();
        let _ = write!(
            o,
            r#"<div class="panel mini"><h3>{} {}</h3><div class="fig">{} objects ({}) · {} ({})</div>"#,
            esc(&g.name),
            badge(g),
            signed_count(g.count_delta),
            signed_rate(g.rate_per_s),
            signed_bytes(g.bytes_delta),
            signed_rate_bytes(g.bytes_per_s)
        );
        o.push_str(&line_chart(&Chart {
            width: 360.0,
            height: 150.0,
            unit: if by_bytes { Unit::Bytes } else { Unit::Count },
            series: vec![Series {
                label: String::new(),
                color: color(g),
                points,
                area: true,
                dashed: false,
            }],
            legend: false,
        }));
        o.push_str("</div>");
    }
    o.push_str("</div>");

    // The table: every type that moved; the ones that stayed put are only counted.
    let moved: Vec<&TypeGrowth> = doc
        .growth
        .iter()
        .filter(|g| g.count_delta != 0 || g.bytes_delta != 0 || g.count_min != g.count_max)
        .collect();
    let still = doc.growth.len() - moved.len();
    let _ = write!(
        o,
        r#"<h2>Types that changed <span class="how">(largest byte growth first; {} of {} shown; {} more types did not change)</span></h2>"#,
        moved.len().min(TABLE_ROWS),
        moved.len(),
        still
    );
    o.push_str(
        r#"<table><tr><th class="name">type</th><th>verdict</th><th>objects</th><th>Δ objects</th><th>objects/s</th><th>bytes</th><th>Δ bytes</th><th>bytes/s</th><th>count over time</th></tr>"#,
    );
    if moved.is_empty() {
        o.push_str(
            r#"<tr><td class="name" colspan="9">No type changed during the recording.</td></tr>"#,
        );
    }
    for g in moved.into_iter().take(TABLE_ROWS) {
        let spark: Vec<(f64, f64)> = type_series(doc, &g.name)
            .iter()
            .map(|&(t, c, _)| (t, c))
            .collect();
        let _ = write!(
            o,
            r#"<tr{}><td class="name" title="{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            if g.suspect { r#" class="suspect""# } else { "" },
            esc(&verdict(g)),
            esc(&g.name),
            badge(g),
            thousands(g.count_last),
            signed_count(g.count_delta),
            signed_rate(g.rate_per_s),
            human_bytes(g.bytes_last),
            signed_bytes(g.bytes_delta),
            signed_rate_bytes(g.bytes_per_s),
            sparkline(&spark, color(g), 120.0, 22.0)
        );
    }
    o.push_str("</table>");

    if !doc.warnings.is_empty() {
        o.push_str("<h2>Warnings</h2>");
        for w in &doc.warnings {
            let _ = write!(o, r#"<div class="warn">{}</div>"#, esc(w));
        }
    }
    o.push_str(
        r#"<h2>How to read this</h2><p class="how">Each sample is a census of the process's Python objects, read from outside it: nothing ran inside the process and no collection was forced, so garbage that a collection would free is shown as it really lingers. A type is a <b>leak suspect</b> when its count or bytes grow <i>steadily</i>: a significant Mann–Kendall trend (p&nbsp;&lt;&nbsp;0.001) with a positive Theil–Sen slope that survives removing the single largest jump, over at least 8 samples. Growth explained by one jump is a <b>step</b> (a cache filled once); ups and downs without a trend are <b>churn</b>.</p>"#,
    );
    o.push_str("</main></body></html>\n");
    o
}
