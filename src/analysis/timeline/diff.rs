//! Differences between two censuses: two snapshots, two recordings (their last samples), or one
//! of each.

use super::recording;
use crate::analysis::census::snapshot;
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str = "pymemspy.diff/1";

/// Per-type (count, bytes) of one side, and what it was read from.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub label: String,
    pub types: BTreeMap<String, (u64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TypeDelta {
    #[serde(rename = "type")]
    pub name: String,
    pub count_a: u64,
    pub count_b: u64,
    pub count_delta: i64,
    pub bytes_a: u64,
    pub bytes_b: u64,
    pub bytes_delta: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub schema: &'static str,
    pub a: String,
    pub b: String,
    pub objects_delta: i64,
    pub bytes_delta: i64,
    /// Every type present on either side with a change, by bytes_delta (largest growth first).
    pub types: Vec<TypeDelta>,
}

/// Read one side from a file written by `pymemspy snapshot --format json` or `record`.
pub fn load(path: &Path) -> Result<Side> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not JSON ({e}): give files written by `pymemspy snapshot --format json` or \
             `pymemspy record`",
            path.display()
        ))
    })?;
    parse(&doc, &path.display().to_string())
}

/// The census of a parsed document (label names it in errors and output).
pub fn parse(doc: &Value, label: &str) -> Result<Side> {
    let bad = |why: &str| Error::Usage(format!("{label}: {why}"));
    let mut types = BTreeMap::new();
    let num = |v: &Value| {
        v.as_u64()
            .ok_or_else(|| bad("a count or size is not a number"))
    };
    match doc["schema"].as_str() {
        Some(snapshot::SCHEMA) => {
            let list = doc["types"]
                .as_array()
                .ok_or_else(|| bad("snapshot without a types list"))?;
            for t in list {
                let name = t["type"]
                    .as_str()
                    .ok_or_else(|| bad("type without a name"))?;
                let e: &mut (u64, u64) = types.entry(name.to_string()).or_default();
                e.0 += num(&t["count"])?;
                e.1 += num(&t["bytes"])?;
            }
            Ok(Side {
                label: format!(
                    "{label} (snapshot at {})",
                    doc["taken_at"].as_str().unwrap_or("?")
                ),
                types,
            })
        }
        Some(recording::SCHEMA) => {
            let last = doc["timeline"]
                .as_array()
                .and_then(|t| t.last())
                .ok_or_else(|| bad("recording without samples"))?;
            let map = last["types"]
                .as_object()
                .ok_or_else(|| bad("sample without types"))?;
            for (name, v) in map {
                types.insert(name.clone(), (num(&v[0])?, num(&v[1])?));
            }
            Ok(Side {
                label: format!(
                    "{label} (recording, last sample at +{}s)",
                    last["t"].as_f64().unwrap_or(0.0)
                ),
                types,
            })
        }
        other => Err(bad(&format!(
            "schema {} is neither {} nor {}",
            other.unwrap_or("(none)"),
            snapshot::SCHEMA,
            recording::SCHEMA
        ))),
    }
}

pub fn diff(a: &Side, b: &Side) -> Diff {
    let names: std::collections::BTreeSet<&String> = a.types.keys().chain(b.types.keys()).collect();
    let mut types: Vec<TypeDelta> = names
        .into_iter()
        .map(|name| {
            let (ca, ba) = a.types.get(name).copied().unwrap_or_default();
            let (cb, bb) = b.types.get(name).copied().unwrap_or_default();
            TypeDelta {
                name: name.clone(),
                count_a: ca,
                count_b: cb,
                count_delta: cb as i64 - ca as i64,
                bytes_a: ba,
                bytes_b: bb,
                bytes_delta: bb as i64 - ba as i64,
            }
        })
        .filter(|d| d.count_delta != 0 || d.bytes_delta != 0)
        .collect();
    types.sort_by(|x, y| {
        y.bytes_delta
            .cmp(&x.bytes_delta)
            .then_with(|| y.count_delta.cmp(&x.count_delta))
            .then_with(|| x.name.cmp(&y.name))
    });
    let total = |s: &Side| -> (i64, i64) {
        s.types
            .values()
            .fold((0, 0), |(c, b), &(x, y)| (c + x as i64, b + y as i64))
    };
    let (ta, tb) = (total(a), total(b));
    Diff {
        schema: SCHEMA,
        a: a.label.clone(),
        b: b.label.clone(),
        objects_delta: tb.0 - ta.0,
        bytes_delta: tb.1 - ta.1,
        types,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_a_snapshot_against_a_recording() {
        let a = json!({"schema": "pymemspy.snapshot/1", "taken_at": "x", "types": [
            {"type": "dict", "count": 10, "bytes": 1000},
            {"type": "Gone", "count": 5, "bytes": 50},
            {"type": "Same", "count": 1, "bytes": 1}]});
        let b = json!({"schema": "pymemspy.record/1", "timeline": [
            {"t": 0.0, "types": {}},
            {"t": 1.5, "types": {"dict": [30, 4000], "New": [2, 20], "Same": [1, 1]}}]});
        let d = diff(&parse(&a, "a").unwrap(), &parse(&b, "b").unwrap());
        let names: Vec<&str> = d.types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["dict", "New", "Gone"]);
        assert_eq!(d.types[0].count_delta, 20);
        assert_eq!(d.types[2].bytes_delta, -50);
        assert_eq!(d.bytes_delta, 4000 + 20 + 1 - 1000 - 50 - 1);
    }

    #[test]
    fn refuses_other_documents() {
        assert!(parse(&json!({"schema": "other/1"}), "x").is_err());
        assert!(parse(&json!({"schema": "pymemspy.record/1", "timeline": []}), "x").is_err());
    }
}
