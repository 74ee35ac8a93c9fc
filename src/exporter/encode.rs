//! The exposition formats: Prometheus text 0.0.4, and OpenMetrics 1.0 when the scraper asks for
//! it. Both need every sample of a family together under one TYPE line (a family split in two
//! fails the whole scrape), so samples are gathered by family first and written at the end.
//!
//! Written here rather than with a metrics crate: the series change with every census (types
//! come and go, processes start and exit) and are rebuilt from the latest figures at each
//! scrape, which registry-based clients do not model; what they would add is the escaping,
//! which is three characters.

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics only when the Accept header names it (Prometheus does since 2.5).
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// The family name carries no `_total`; its samples do (OpenMetrics requires it).
    Counter,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: String,
}

/// Samples gathered by family, in the order families were declared.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// Declare a family (once; a second declaration of the same name is ignored).
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        if !self.families.iter().any(|f| f.name == name) {
            self.families.push(Family {
                name,
                help,
                kind,
                samples: String::new(),
            });
        }
    }

    /// One sample. `labels` is already encoded (`a="x",b="y"`, see [`label`]), possibly
    /// empty; `extra` is one more label pair to escape here.
    pub fn sample(&mut self, name: &'static str, labels: &str, extra: &[(&str, &str)], v: f64) {
        let Some(f) = self.families.iter_mut().find(|f| f.name == name) else {
            debug_assert!(false, "family {name} not declared");
            return;
        };
        let s = &mut f.samples;
        s.push_str(name);
        if f.kind == Kind::Counter {
            s.push_str("_total");
        }
        let mut all = labels.to_string();
        for (k, val) in extra {
            if !all.is_empty() {
                all.push(',');
            }
            label(&mut all, k, val);
        }
        if !all.is_empty() {
            let _ = write!(s, "{{{all}}}");
        }
        s.push(' ');
        number(s, v);
        s.push('\n');
    }

    pub fn finish(self, format: Format) -> String {
        let mut out = String::with_capacity(self.families.iter().map(|f| f.samples.len()).sum());
        for f in &self.families {
            if f.samples.is_empty() {
                continue;
            }
            let kind = match f.kind {
                Kind::Gauge => "gauge",
                Kind::Counter => "counter",
            };
            // In the text format the HELP and TYPE of a counter name the sample (`_total`);
            // in OpenMetrics they name the family.
            let head = match (format, f.kind) {
                (Format::Text, Kind::Counter) => format!("{}_total", f.name),
                _ => f.name.to_string(),
            };
            let _ = writeln!(out, "# HELP {head} {}", f.help);
            let _ = writeln!(out, "# TYPE {head} {kind}");
            out.push_str(&f.samples);
        }
        if format == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// Append `key="value"` with the value escaped: backslash, double quote and line feed are the
/// three characters both formats escape; everything else (any UTF-8) is allowed as it is.
pub fn label(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            // Other control characters are legal but break log lines and terminals: shown
            // as a replacement character (a type name never holds them legitimately).
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A label set encoded once (per process), reused by every sample of it.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        label(&mut s, k, v);
    }
    s
}

fn number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        // Integers as integers: exact, and what a reader expects of counts and bytes.
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hostile_label_values() {
        let mut s = String::new();
        label(&mut s, "type", "a\"b\\c\nd\re}");
        assert_eq!(s, r#"type="a\"b\\c\nd�e}""#);
    }

    #[test]
    fn families_are_grouped_and_counters_named_per_format() {
        let mut e = Exposition::default();
        e.family("x_bytes", Kind::Gauge, "X.");
        e.family("y", Kind::Counter, "Y.");
        e.sample("x_bytes", "pid=\"1\"", &[], 1.0);
        e.sample("y", "", &[("g", "0")], 2.0);
        e.sample("x_bytes", "pid=\"2\"", &[("type", "t")], 0.5);
        let text = e.finish(Format::Text);
        assert_eq!(
            text,
            concat!(
                "# HELP x_bytes X.\n# TYPE x_bytes gauge\nx_bytes{pid=\"1\"} 1\n",
                "x_bytes{pid=\"2\",type=\"t\"} 0.5\n# HELP y_total Y.\n",
                "# TYPE y_total counter\ny_total{g=\"0\"} 2\n"
            )
        );
        let mut e = Exposition::default();
        e.family("y", Kind::Counter, "Y.");
        e.sample("y", "", &[], 3.0);
        assert_eq!(
            e.finish(Format::OpenMetrics),
            "# HELP y Y.\n# TYPE y counter\ny_total 3\n# EOF\n"
        );
    }
}
