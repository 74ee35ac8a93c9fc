//! Interactive flamegraph SVG, drawn by inferno from the sanitised folded lines.

use super::folded::{escape_controls, folded_lines};
use super::Profile;
use anyhow::{bail, Context};
use inferno::flamegraph::{self, color::BasicPalette, Palette, TextTruncateDirection};

pub(super) fn render(profile: &Profile) -> anyhow::Result<Vec<u8>> {
    let lines = folded_lines(profile);
    if lines.iter().all(|(_, value)| *value == 0) {
        bail!(
            "nothing to draw for \"{}\": no stack has any {}",
            profile.title,
            profile.unit.noun()
        );
    }
    let lines: Vec<String> = lines
        .into_iter()
        .map(|(stack, value)| format!("{stack} {value}"))
        .collect();

    let mut options = flamegraph::Options::default();
    // Title and subtitle may quote names from the target: control characters are escaped so
    // the XML stays well-formed (inferno escapes markup itself).
    options.title = escape_controls(&profile.title);
    let subtitle = escape_controls(&profile.subtitle);
    options.subtitle = (!profile.subtitle.trim().is_empty()).then_some(subtitle);
    options.count_name = profile.unit.noun().to_string();
    // Frames are functions in allocation profiles but objects in retention paths.
    options.name_type = String::new();
    // A narrow frame keeps the start of its name: the function, not the file.
    options.text_truncate_direction = TextTruncateDirection::Right;
    options.colors = Palette::Basic(BasicPalette::Mem);
    // Colours from a hash of the name: the same frame has the same colour in every file, and
    // the output is reproducible.
    options.deterministic = true;

    let mut svg = Vec::new();
    // The lines are sorted already.
    options.no_sort = true;
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .context("cannot draw the flamegraph")?;
    Ok(svg)
}

/// A flamegraph-sized page with the profile's title and subtitle and one line of `note`.
pub(super) fn note_page(profile: &Profile, note: &str) -> Vec<u8> {
    let esc = |t: &str| {
        escape_controls(t)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"120\" viewBox=\"0 0 1200 120\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#eeeeee\"/>\n\
         <text x=\"600\" y=\"24\" text-anchor=\"middle\" font-family=\"Verdana\" \
         font-size=\"17\">{}</text>\n\
         <text x=\"600\" y=\"48\" text-anchor=\"middle\" font-family=\"Verdana\" \
         font-size=\"12\" fill=\"#555555\">{}</text>\n\
         <text x=\"600\" y=\"84\" text-anchor=\"middle\" font-family=\"Verdana\" \
         font-size=\"14\">{}</text>\n</svg>\n",
        esc(&profile.title),
        esc(&profile.subtitle),
        esc(note)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_profile;
    use super::*;
    use crate::profile::{Profile, Unit};
    use quick_xml::events::Event;

    /// Parse the whole document; return every text node (titles, labels, script aside).
    fn xml_texts(svg: &[u8]) -> Vec<String> {
        let mut reader = quick_xml::Reader::from_reader(svg);
        let mut texts = Vec::new();
        let mut buf = Vec::new();
        let mut depth = 0i64;
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(Event::Eof) => break,
                Ok(Event::Start(_)) => depth += 1,
                Ok(Event::End(_)) => depth -= 1,
                Ok(Event::Text(t)) => texts.push(t.xml10_content().unwrap().into_owned()),
                Ok(Event::GeneralRef(r)) => {
                    let entity = format!("&{};", r.decode().unwrap());
                    texts.push(quick_xml::escape::unescape(&entity).unwrap().into_owned());
                }
                Ok(_) => {}
                Err(e) => panic!("SVG is not well-formed XML: {e}"),
            }
            buf.clear();
        }
        assert_eq!(depth, 0, "unbalanced elements");
        texts
    }

    #[test]
    fn svg_is_well_formed_and_names_frames_title_and_subtitle() {
        let profile = sample_profile();
        let svg = render(&profile.merged()).unwrap();
        let text = xml_texts(&svg).concat();
        assert!(text.contains(&profile.title), "title missing");
        assert!(text.contains(&profile.subtitle), "subtitle missing");
        for frame in [
            "load_users (db.py:7)",
            "cache\u{ff1b}put (cache.py:3)",
            "weird\\nname\\twith\u{a0}12",
            "__main__.app_cache",
        ] {
            assert!(text.contains(frame), "frame {frame:?} missing");
        }
        assert!(text.contains("5,639 bytes"), "total missing");
    }

    #[test]
    fn hostile_title_and_frames_stay_well_formed() {
        let mut p = Profile::new("<script>&\u{1} pid 42", "]]> \u{ffff}", Unit::Objects);
        p.push(["</svg>", "&amp;\u{0}", "\"'<>"], 3);
        let svg = render(&p).unwrap();
        let text = xml_texts(&svg).concat();
        assert!(text.contains("<script>&\\u{1} pid 42"));
        assert!(text.contains("]]> \\u{ffff}"));
        assert!(text.contains("</svg>"));
        assert!(text.contains("3 objects"));
    }

    #[test]
    fn zero_profile_is_an_actionable_error() {
        let mut p = Profile::new("Growth", "s", Unit::Bytes);
        p.push(["a"], 0);
        let err = render(&p).unwrap_err().to_string();
        assert!(err.contains("nothing to draw"), "{err}");
    }
}
