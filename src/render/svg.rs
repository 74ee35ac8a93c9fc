//! Small inline-SVG charts (line and area over time, sparklines) for the HTML report: drawn
//! here so the page needs no script, style sheet or font from anywhere else.

use super::table::thousands;
use std::fmt::Write;

/// Escape text for HTML and SVG (type names come from the target: hostile input).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// What the y values are, for tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
}

/// One line on a chart.
pub struct Series {
    pub label: String,
    pub color: &'static str,
    /// (seconds, value)
    pub points: Vec<(f64, f64)>,
    /// Shade the area under the line.
    pub area: bool,
    pub dashed: bool,
}

pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub unit: Unit,
    pub series: Vec<Series>,
    /// Show the legend (for charts with several series).
    pub legend: bool,
}

/// Ticks at 1, 2 or 5 × 10^k (in the display unit), covering [lo, hi].
fn nice_step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Scale for byte values: the binary unit that keeps the largest value under 1024.
fn byte_unit(max: f64) -> (f64, &'static str) {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scale = 1.0;
    let mut i = 0;
    while max / scale >= 1024.0 && i + 1 < units.len() {
        scale *= 1024.0;
        i += 1;
    }
    (scale, units[i])
}

/// Tick values (in raw units) and their labels for a y range.
pub fn y_ticks(lo: f64, hi: f64, unit: Unit) -> (f64, f64, Vec<(f64, String)>) {
    let (scale, name) = match unit {
        Unit::Bytes => byte_unit(hi.abs().max(lo.abs())),
        Unit::Count => (1.0, ""),
    };
    let (l, h) = (lo / scale, hi / scale);
    let step = nice_step((h - l).max(1e-9), 4.0);
    let step = if unit == Unit::Count || name == "B" {
        step.max(1.0)
    } else {
        step
    };
    let start = (l / step).floor() * step;
    let end = (h / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut v = start;
    while v <= end + step * 0.001 && ticks.len() < 20 {
        let label = match unit {
            Unit::Count => compact_count(v),
            Unit::Bytes => {
                let decimals = if step >= 1.0 { 0 } else { 1 };
                format!("{v:.decimals$} {name}")
            }
        };
        ticks.push((v * scale, label));
        v += step;
    }
    (start * scale, end * scale, ticks)
}

/// 12000 → "12k", 1500000 → "1.5M", 950 → "950".
pub fn compact_count(v: f64) -> String {
    let a = v.abs();
    let (d, s) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        return if v.fract() == 0.0 {
            let sign = if v < 0.0 { "-" } else { "" };
            format!("{sign}{}", thousands(a as u64))
        } else {
            format!("{v:.1}")
        };
    };
    let x = v / d;
    if x.fract().abs() < 1e-9 {
        format!("{x:.0}{s}")
    } else {
        format!("{x:.1}{s}")
    }
}

fn time_label(s: f64) -> String {
    if s >= 3600.0 {
        format!(
            "{}h{:02}",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else if s >= 120.0 {
        format!("{}m{:02}", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

fn bounds(series: &[Series]) -> Option<(f64, f64, f64, f64)> {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let mut it = pts
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .peekable();
    it.peek()?;
    Some(it.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(x0, x1, y0, y1), &(x, y)| (x0.min(x), x1.max(x), y0.min(y), y1.max(y)),
    ))
}

/// A line chart with axes, grid and optional legend. Long: the chart's layers in the order they are
/// drawn (y grid, x grid, baseline, series, legend), all placed by the same scale closures `px` and
/// `py`.
pub fn line_chart(c: &Chart) -> String {
    let (w, h) = (c.width, c.height);
    let (ml, mr, mt, mb) = (64.0, 14.0, if c.legend { 26.0 } else { 10.0 }, 24.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img">"#
    );
    let Some((x0, x1, ymin, ymax)) = bounds(&c.series) else {
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="axis" text-anchor="middle">no samples</text></svg>"#,
            w / 2.0,
            h / 2.0
        );
        return o;
    };
    // Start at zero unless the values sit far above it (then the shape matters more).
    let lo = if ymin >= 0.0 && ymin <= 0.5 * ymax {
        0.0
    } else {
        ymin
    };
    let hi = if ymax > lo {
        ymax
    } else {
        lo + lo.abs().max(1.0) * 0.1 + 1.0
    };
    let (lo, hi, ticks) = y_ticks(lo, hi, c.unit);
    let xspan = (x1 - x0).max(1e-9);
    let yspan = (hi - lo).max(1e-9);
    let px = |x: f64| ml + (x - x0) / xspan * pw;
    let py = |y: f64| mt + ph - (y - lo) / yspan * ph;
    for (v, label) in &ticks {
        let y = py(*v);
        let _ = write!(
            o,
            r#"<line x1="{ml}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{}</text>"#,
            ml + pw,
            ml - 6.0,
            y + 4.0,
            esc(label)
        );
    }
    let xstep = nice_step(xspan, (pw / 90.0).max(2.0));
    let mut x = (x0 / xstep).ceil() * xstep;
    while x <= x1 + 1e-9 {
        let gx = px(x);
        let _ = write!(
            o,
            r#"<line x1="{gx:.1}" x2="{gx:.1}" y1="{mt}" y2="{:.1}" class="grid faint"/><text x="{gx:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
            mt + ph,
            mt + ph + 16.0,
            time_label(x)
        );
        x += xstep;
    }
    let _ = write!(
        o,
        r#"<line x1="{ml}" x2="{:.1}" y1="{:.1}" y2="{:.1}" class="baseline"/>"#,
        ml + pw,
        mt + ph,
        mt + ph
    );
    for s in &c.series {
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        if s.area && pts.len() > 1 {
            let first = s.points.first().map_or(x0, |p| p.0);
            let last = s.points.last().map_or(x1, |p| p.0);
            let _ = write!(
                o,
                r#"<polygon points="{:.1},{:.1} {} {:.1},{:.1}" fill="{}" fill-opacity="0.14"/>"#,
                px(first),
                mt + ph,
                pts.join(" "),
                px(last),
                mt + ph,
                s.color
            );
        }
        let dash = if s.dashed {
            r#" stroke-dasharray="5 4""#
        } else {
            ""
        };
        let _ = write!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2" stroke-linejoin="round"{dash}/>"#,
            pts.join(" "),
            s.color
        );
        if pts.len() == 1 {
            let (x, y) = s.points[0];
            let _ = write!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                px(x),
                py(y),
                s.color
            );
        }
    }
    if c.legend {
        let mut lx = ml;
        for s in &c.series {
            let _ = write!(
                o,
                r#"<rect x="{lx:.1}" y="6" width="14" height="4" rx="2" fill="{}"/><text x="{:.1}" y="12" class="legend">{}</text>"#,
                s.color,
                lx + 20.0,
                esc(&s.label)
            );
            lx += 34.0 + 7.0 * s.label.chars().count() as f64;
        }
    }
    o.push_str("</svg>");
    o
}

/// A tiny chart without axes, for table rows.
pub fn sparkline(points: &[(f64, f64)], color: &str, w: f64, h: f64) -> String {
    let mut o = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="spark" viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#
    );
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    if pts.len() >= 2 {
        let (x0, x1) = (pts[0].0, pts[pts.len() - 1].0);
        let (lo, hi) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let (xs, ys) = ((x1 - x0).max(1e-9), (hi - lo).max(1e-9));
        let line: Vec<String> = pts
            .iter()
            .map(|&(x, y)| {
                let yy = if hi > lo {
                    h - 2.0 - (y - lo) / ys * (h - 4.0)
                } else {
                    h / 2.0
                };
                format!("{:.1},{:.1}", 1.0 + (x - x0) / xs * (w - 2.0), yy)
            })
            .collect();
        let _ = write!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5" stroke-linejoin="round"/>"#,
            line.join(" ")
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_in_their_unit() {
        let (lo, hi, t) = y_ticks(0.0, 3.3 * 1024.0 * 1024.0, Unit::Bytes);
        assert_eq!(lo, 0.0);
        assert!(hi >= 3.3 * 1024.0 * 1024.0);
        assert_eq!(t[1].1, "1 MiB");
        let (_, _, t) = y_ticks(0.0, 12_345.0, Unit::Count);
        let labels: Vec<&str> = t.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(labels, ["0", "5k", "10k", "15k"]);
    }

    #[test]
    fn escapes_hostile_names() {
        assert_eq!(
            esc("<script>&\"x'\u{7}"),
            "&lt;script&gt;&amp;&quot;x&#39;\u{fffd}"
        );
    }

    #[test]
    fn empty_chart_says_so() {
        let c = Chart {
            width: 300.0,
            height: 100.0,
            unit: Unit::Count,
            series: vec![],
            legend: false,
        };
        assert!(line_chart(&c).contains("no samples"));
    }
}
