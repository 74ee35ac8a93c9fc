//! pprof: the gzipped `perftools.profiles.Profile` protobuf that `go tool pprof` reads.
//!
//! The messages are declared here with prost's derive macros (field numbers from pprof's
//! profile.proto), so no protoc or build script is needed. Only what pymemspy writes is
//! declared; decoders skip absent fields.
//!
//! Each distinct frame string becomes one Location with one Line; frames following the
//! `FUNCTION (FILE:LINE)` convention share a Function per (function, file) and keep their line
//! on the Line. Function.start_line stays 0: a frame string does not say where the function
//! begins.

use super::frame::FrameInfo;
use crate::profile::{Profile, Unit};
use flate2::{write::GzEncoder, Compression};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PprofProfile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Index 0 must be "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// String-table indices of free-text comments (`go tool pprof -comments`).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// String-table index of the sample type viewers show first.
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Sample {
    /// Leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample_type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// Builds the tables, deduplicating strings, functions and locations.
struct Builder<'a> {
    out: PprofProfile,
    strings: HashMap<String, i64>,
    functions: HashMap<(&'a str, &'a str), u64>,
    locations: HashMap<&'a str, u64>,
}

impl<'a> Builder<'a> {
    fn new() -> Builder<'a> {
        let mut b = Builder {
            out: PprofProfile::default(),
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
        };
        b.string(""); // index 0, as the format requires
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn value_type(&mut self, kind: &str, unit: &str) -> ValueType {
        ValueType {
            r#type: self.string(kind),
            unit: self.string(unit),
        }
    }

    fn function(&mut self, name: &'a str, file: &'a str) -> u64 {
        if let Some(&id) = self.functions.get(&(name, file)) {
            return id;
        }
        let id = self.out.function.len() as u64 + 1; // ids are non-zero
        let function = Function {
            id,
            name: self.string(name),
            // Left empty on purpose: pprof demangles a name equal to its system name, and its
            // C++ template simplifier would cut `<module>` or `<lambda>` down to nothing.
            system_name: 0,
            filename: self.string(file),
            start_line: 0,
        };
        self.out.function.push(function);
        self.functions.insert((name, file), id);
        id
    }

    fn location(&mut self, frame: &'a str, files: &'a BTreeMap<String, String>) -> u64 {
        if let Some(&id) = self.locations.get(frame) {
            return id;
        }
        let info = FrameInfo::parse(frame);
        // The whole path where the label was shortened: pprof shows function names in its
        // graphs and the file in source listings, which need all of it.
        let file = info.file.unwrap_or("");
        let file = files.get(file).map_or(file, String::as_str);
        let function_id = self.function(info.function, file);
        let id = self.out.location.len() as u64 + 1;
        self.out.location.push(Location {
            id,
            line: vec![Line {
                function_id,
                line: i64::from(info.line),
            }],
        });
        self.locations.insert(frame, id);
        id
    }
}

/// pprof values are signed; a value past i64::MAX (only from a corrupt reading) is clamped.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Build the protobuf message (not yet encoded).
pub(super) fn build(profile: &Profile) -> PprofProfile {
    let mut b = Builder::new();
    let with_objects = profile.has_object_counts();
    let mut types = match profile.unit {
        Unit::Bytes => vec![b.value_type("inuse_space", "bytes")],
        Unit::Objects => vec![b.value_type("inuse_objects", "count")],
        Unit::Samples => vec![b.value_type("samples", "count")],
    };
    if with_objects {
        types.push(b.value_type("inuse_objects", "count"));
    }
    b.out.default_sample_type = types[0].r#type;
    b.out.sample_type = types;
    for text in [&profile.title, &profile.subtitle] {
        if !text.trim().is_empty() {
            let i = b.string(text);
            b.out.comment.push(i);
        }
    }
    for stack in &profile.stacks {
        let location_id = super::frames_or_placeholder(stack)
            .rev() // pprof wants the leaf first
            .map(|f| b.location(f, &profile.files))
            .collect();
        let mut value = vec![signed(stack.value)];
        if with_objects {
            value.push(signed(stack.objects.unwrap_or(0)));
        }
        b.out.sample.push(Sample { location_id, value });
    }
    b.out
}

pub(super) fn render(profile: &Profile) -> anyhow::Result<Vec<u8>> {
    let encoded = build(profile).encode_to_vec();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&encoded)?;
    Ok(gz.finish()?)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_profile;
    use super::super::Stack;
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn decode(bytes: &[u8]) -> PprofProfile {
        let mut raw = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut raw).unwrap();
        PprofProfile::decode(raw.as_slice()).unwrap()
    }

    /// Stacks as function names, root first, with their values: what a viewer would show.
    fn stacks(p: &PprofProfile) -> Vec<(Vec<String>, Vec<i64>)> {
        let s = |i: i64| p.string_table[usize::try_from(i).unwrap()].clone();
        p.sample
            .iter()
            .map(|sample| {
                let mut names: Vec<String> = sample
                    .location_id
                    .iter()
                    .map(|id| {
                        let loc = &p.location[*id as usize - 1];
                        assert_eq!(loc.id, *id);
                        let f = &p.function[loc.line[0].function_id as usize - 1];
                        assert_eq!(f.id, loc.line[0].function_id);
                        s(f.name)
                    })
                    .collect();
                names.reverse();
                (names, sample.value.clone())
            })
            .collect()
    }

    #[test]
    fn pprof_gunzips_decodes_and_keeps_stacks_leaf_first() {
        let profile = sample_profile().merged();
        let p = decode(&render(&profile).unwrap());
        assert_eq!(p.string_table[0], "");
        let types: Vec<_> = p
            .sample_type
            .iter()
            .map(|t| {
                (
                    p.string_table[t.r#type as usize].as_str(),
                    p.string_table[t.unit as usize].as_str(),
                )
            })
            .collect();
        assert_eq!(types, [("inuse_space", "bytes")]);
        assert_eq!(
            p.string_table[p.default_sample_type as usize],
            "inuse_space"
        );
        let comments: Vec<_> = p
            .comment
            .iter()
            .map(|&i| &p.string_table[i as usize])
            .collect();
        assert_eq!(comments, [&profile.title, &profile.subtitle]);

        let got = stacks(&p);
        assert_eq!(got.len(), profile.stacks.len());
        let total: i64 = got.iter().map(|(_, v)| v[0]).sum();
        assert_eq!(total as u64, profile.total());
        assert!(got.contains(&(
            vec!["<module>".into(), "handle".into(), "load_users".into()],
            vec![4096]
        )));
        // Leaf first on the wire: the first location of that sample is load_users at db.py:7.
        let sample = &p.sample[got
            .iter()
            .position(|(n, _)| n.len() == 3 && n[2] == "load_users")
            .unwrap()];
        let leaf = &p.location[sample.location_id[0] as usize - 1];
        assert_eq!(leaf.line[0].line, 7);
        let f = &p.function[leaf.line[0].function_id as usize - 1];
        assert_eq!(p.string_table[f.filename as usize], "db.py");
    }

    #[test]
    fn shortened_files_are_whole_in_the_file_field() {
        let mut profile = Profile::new("t", "", Unit::Samples);
        profile.push(["main (app.py:1)", "work (lib/db.py:10)"], 1);
        profile
            .files
            .insert("app.py".into(), "/srv/app/app.py".into());
        let p = build(&profile);
        let files: Vec<&str> = p
            .function
            .iter()
            .map(|f| p.string_table[f.filename as usize].as_str())
            .collect();
        // A label the producer did not shorten (no entry) stays as it is.
        assert_eq!(files, ["lib/db.py", "/srv/app/app.py"]);
    }

    #[test]
    fn functions_are_shared_across_lines_and_stacks() {
        let mut profile = Profile::new("t", "", Unit::Samples);
        profile.push(["main (a.py:1)", "work (a.py:10)"], 1);
        profile.push(["main (a.py:1)", "work (a.py:11)"], 1);
        profile.push(["main (a.py:2)", "work (a.py:10)"], 1);
        let p = build(&profile);
        assert_eq!(p.function.len(), 2);
        assert_eq!(p.location.len(), 4);
        let strings: std::collections::HashSet<_> = p.string_table.iter().collect();
        assert_eq!(
            strings.len(),
            p.string_table.len(),
            "strings are deduplicated"
        );
        assert_eq!(p.comment.len(), 1, "an empty subtitle is no comment");
    }

    #[test]
    fn object_counts_add_a_sample_type_and_huge_values_clamp() {
        let mut profile = Profile::new("t", "s", Unit::Bytes);
        profile
            .stacks
            .push(Stack::new(["a"], u64::MAX).with_objects(3));
        profile
            .stacks
            .push(Stack::new(Vec::<String>::new(), 8).with_objects(1));
        let p = decode(&render(&profile).unwrap());
        assert_eq!(p.sample_type.len(), 2);
        assert_eq!(
            p.string_table[p.sample_type[1].r#type as usize],
            "inuse_objects"
        );
        assert_eq!(p.sample[0].value, [i64::MAX, 3]);
        let got = stacks(&p);
        assert_eq!(got[1].0, ["(no frames)"]);
    }
}
