//! speedscope's file format (https://www.speedscope.app/file-format-schema.json): frames shared
//! by index, one "sampled" profile whose samples are stacks of frame indices (root first) and
//! whose weights are the stacks' values. With object counts, a second profile weighs the same
//! stacks by objects.

use super::frame::FrameInfo;
use crate::profile::{Profile, Stack, Unit};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

const SCHEMA: &str = "https://www.speedscope.app/file-format-schema.json";

#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    name: &'a str,
    exporter: String,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    shared: Shared<'a>,
    profiles: Vec<Sampled>,
}

#[derive(Serialize)]
struct Shared<'a> {
    frames: Vec<Frame<'a>>,
}

#[derive(Serialize)]
struct Frame<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

#[derive(Serialize)]
struct Sampled {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    /// speedscope knows bytes and times; counts of objects or samples are "none".
    unit: &'static str,
    #[serde(rename = "startValue")]
    start_value: u64,
    #[serde(rename = "endValue")]
    end_value: u64,
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
}

/// Frame strings to shared-frame indices, in order of first appearance.
struct FrameTable<'a> {
    index: HashMap<&'a str, usize>,
    frames: Vec<Frame<'a>>,
    /// Shortened file label → whole path (`Profile::files`).
    files: &'a BTreeMap<String, String>,
}

impl<'a> FrameTable<'a> {
    fn intern(&mut self, frame: &'a str) -> usize {
        if let Some(&i) = self.index.get(frame) {
            return i;
        }
        let info = FrameInfo::parse(frame);
        let i = self.frames.len();
        self.frames.push(Frame {
            name: info.function,
            // The whole path where the label was shortened: speedscope shows the function's
            // name in the graph and the file apart, where the whole of it fits.
            file: info
                .file
                .map(|f| self.files.get(f).map_or(f, String::as_str)),
            line: info.file.map(|_| info.line),
        });
        self.index.insert(frame, i);
        i
    }
}

fn sampled(
    name: String,
    unit: &'static str,
    samples: Vec<Vec<usize>>,
    weights: Vec<u64>,
) -> Sampled {
    let end_value = weights.iter().fold(0u64, |a, w| a.saturating_add(*w));
    Sampled {
        kind: "sampled",
        name,
        unit,
        start_value: 0,
        end_value,
        samples,
        weights,
    }
}

pub(super) fn render(profile: &Profile) -> anyhow::Result<Vec<u8>> {
    let mut table = FrameTable {
        index: HashMap::new(),
        frames: Vec::new(),
        files: &profile.files,
    };
    let samples: Vec<Vec<usize>> = profile
        .stacks
        .iter()
        .map(|s: &Stack| {
            super::frames_or_placeholder(s)
                .map(|f| table.intern(f))
                .collect()
        })
        .collect();

    let name = match profile.subtitle.trim() {
        "" => profile.title.clone(),
        subtitle => format!("{}: {subtitle}", profile.title),
    };
    let unit = match profile.unit {
        Unit::Bytes => "bytes",
        Unit::Objects | Unit::Samples => "none",
    };
    let weights = profile.stacks.iter().map(|s| s.value).collect();
    let mut profiles = vec![sampled(name.clone(), unit, samples.clone(), weights)];
    if profile.has_object_counts() {
        let objects = profile
            .stacks
            .iter()
            .map(|s| s.objects.unwrap_or(0))
            .collect();
        profiles.push(sampled(
            format!("{name} (objects)"),
            "none",
            samples,
            objects,
        ));
    }

    let file = File {
        schema: SCHEMA,
        name: &profile.title,
        exporter: format!("pymemspy {}", env!("CARGO_PKG_VERSION")),
        active_profile_index: 0,
        shared: Shared {
            frames: table.frames,
        },
        profiles,
    };
    // Compact: speedscope files of big profiles are read by programs, not people.
    let mut out = serde_json::to_vec(&file)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_profile;
    use super::super::Stack;
    use super::*;
    use serde_json::Value;

    fn parse(profile: &Profile) -> Value {
        serde_json::from_slice(&render(profile).unwrap()).unwrap()
    }

    /// Every sample indexes a shared frame, samples and weights pair up, endValue is their sum.
    fn check_consistent(doc: &Value) {
        let frames = doc["shared"]["frames"].as_array().unwrap();
        for p in doc["profiles"].as_array().unwrap() {
            assert_eq!(p["type"], "sampled");
            let samples = p["samples"].as_array().unwrap();
            let weights = p["weights"].as_array().unwrap();
            assert_eq!(samples.len(), weights.len());
            for s in samples {
                for i in s.as_array().unwrap() {
                    assert!((i.as_u64().unwrap() as usize) < frames.len());
                }
            }
            let sum: u64 = weights.iter().map(|w| w.as_u64().unwrap()).sum();
            assert_eq!(p["endValue"].as_u64().unwrap(), sum);
            assert_eq!(p["startValue"], 0);
        }
    }

    #[test]
    fn speedscope_indices_are_consistent_and_frames_shared() {
        let profile = sample_profile().merged();
        let doc = parse(&profile);
        check_consistent(&doc);
        assert_eq!(doc["$schema"], SCHEMA);
        assert_eq!(doc["profiles"].as_array().unwrap().len(), 1);
        let p = &doc["profiles"][0];
        assert_eq!(p["unit"], "bytes");
        assert_eq!(p["endValue"].as_u64().unwrap(), profile.total());
        let frames = doc["shared"]["frames"].as_array().unwrap();
        // `<module> (app.py:40)` roots four stacks but is one shared frame.
        let module: Vec<_> = frames.iter().filter(|f| f["name"] == "<module>").collect();
        assert_eq!(module.len(), 1);
        assert_eq!(module[0]["file"], "app.py");
        assert_eq!(module[0]["line"], 40);
        // Root first: the first index of every sample is the root frame.
        for (sample, stack) in p["samples"].as_array().unwrap().iter().zip(&profile.stacks) {
            let root = sample[0].as_u64().unwrap() as usize;
            let info = FrameInfo::parse(&stack.frames[0]);
            assert_eq!(frames[root]["name"], info.function);
        }
        // A frame without the convention keeps its whole name and no file.
        let dict = frames.iter().find(|f| f["name"] == "dict").unwrap();
        assert!(dict.get("file").is_none());
    }

    #[test]
    fn shortened_files_are_whole_in_the_file_field() {
        let mut p = Profile::new("t", "", Unit::Bytes);
        p.push(["main (app.py:1)"], 1);
        p.files.insert("app.py".into(), "/srv/app/app.py".into());
        let doc = parse(&p);
        let frame = &doc["shared"]["frames"][0];
        assert_eq!(frame["name"], "main");
        assert_eq!(frame["file"], "/srv/app/app.py");
        assert_eq!(frame["line"], 1);
    }

    #[test]
    fn object_counts_become_a_second_profile() {
        let mut p = Profile::new("Retained", "", Unit::Bytes);
        p.stacks
            .push(Stack::new(["root", "list"], 800).with_objects(10));
        p.stacks
            .push(Stack::new(["root", "dict"], 200).with_objects(1));
        let doc = parse(&p);
        check_consistent(&doc);
        let profiles = doc["profiles"].as_array().unwrap();
        assert_eq!(profiles.len(), 2);
        assert_eq!(profiles[0]["name"], "Retained");
        assert_eq!(profiles[1]["unit"], "none");
        assert_eq!(profiles[1]["endValue"], 11);
    }
}
