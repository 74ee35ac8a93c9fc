//! The profile a source's findings make: stacks root first with the bytes and objects charged
//! to them, the method that found them, and how a caller rescales, folds and reads them.

use super::stats::AllocStats;
use crate::analysis::session::Session;
use crate::heap::frames::file_names::FileNames;
use crate::process::View;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct AllocProfile {
    /// (frames root first, bytes of heap growth charged, surviving objects charged), heaviest
    /// first. Sampled: both numbers are scaled estimates (see `AllocStats::scale`); from
    /// tracemalloc: the exact bytes and blocks each traceback gained.
    pub stacks: Vec<(Vec<String>, u64, u64)>,
    /// How the stacks were found: `SAMPLED` or `TRACEMALLOC`.
    pub method: &'static str,
    pub stats: AllocStats,
    pub warnings: Vec<String>,
    /// Each file label the frames show that is not the whole path (`leaky.py`), with that
    /// path: frames read `name (label:line)` for people, machine readers find the file here.
    pub files: BTreeMap<String, String>,
    /// Per stack (same order): the sampled survivors' own (bytes, objects), before scaling.
    #[serde(skip)]
    sampled: Vec<(u64, u64)>,
}

impl AllocProfile {
    /// Sampled: the share of the sampled survivors' bytes charged to a whole stack (the rest
    /// was read on stacks cut off, or with no stack known, and is reported apart). None when
    /// exact or nothing survived.
    pub fn attributed_share(&self) -> Option<f64> {
        if self.method == TRACEMALLOC || self.stats.survivor_bytes == 0 {
            return None;
        }
        let charged: u64 = self.sampled.iter().map(|s| s.0).sum();
        Some((charged as f64 / self.stats.survivor_bytes as f64).min(1.0))
    }

    /// Scale the stacks so they add up to this growth of GC-tracked memory (a caller that
    /// measures growth itself, e.g. from its own snapshots, passes its figures here). Shares
    /// between stacks do not change.
    pub fn scale_to(&mut self, growth_bytes: u64, growth_objects: u64) {
        if self.method == TRACEMALLOC {
            return; // exact already, and in allocated bytes, not `sys.getsizeof`
        }
        // The survivors left out as cut off count in the whole the growth is shared over: the
        // stacks shown keep their own share, and the rest is reported, not spread over them.
        let (ob, bb) = self.sampled.iter().fold(
            (self.stats.cut_survivors, self.stats.cut_survivor_bytes),
            |(o, b), s| (o + s.1, b + s.0),
        );
        if bb == 0 {
            return;
        }
        let byte_scale = growth_bytes as f64 / bb as f64;
        let obj_scale = growth_objects as f64 / ob.max(1) as f64;
        for (stack, raw) in self.stacks.iter_mut().zip(&self.sampled) {
            stack.1 = (raw.0 as f64 * byte_scale).round() as u64;
            stack.2 = (raw.1 as f64 * obj_scale).round() as u64;
        }
        self.stats.scale = byte_scale;
    }

    /// Collapsed stacks, `frame;frame;frame bytes` per line, as flamegraph tools read them.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for (frames, bytes, _) in &self.stacks {
            if *bytes == 0 {
                continue;
            }
            let names: Vec<String> = frames.iter().map(|f| f.replace(';', ",")).collect();
            out.push_str(&names.join(";"));
            out.push(' ');
            out.push_str(&bytes.to_string());
            out.push('\n');
        }
        out
    }
}

/// `AllocProfile::method` of a sampled profile.
pub const SAMPLED: &str = "width = heap growth by Python stack and line: newest GC objects and \
    pymalloc's new blocks (str, bytes, int, float) sampled with the running stack, counted if \
    still alive at the end";
/// `AllocProfile::method` of a sampled profile of a free-threaded build.
pub const SAMPLED_THREADS: &str = "width = heap growth by Python stack and line: the blocks \
    each thread's mimalloc heaps handed out between two samples, charged to that thread's \
    stack, counted if still alive at the end";
/// `AllocProfile::method` of a profile read from the target's tracemalloc.
pub const TRACEMALLOC: &str = "width = bytes each allocating traceback gained between the \
    start and the end, read from the target's own tracemalloc (exact; frames as deep as its \
    N)";

/// The root frame under which stacks running the import system are shown: a program's
/// start-up (and any later import) apart from the code it imports for.
pub const IMPORTS: &str = "[imports]";

/// Put stacks that run the import system under `IMPORTS`.
pub(super) fn imports_apart(stacks: &mut [(Vec<String>, u64, u64)]) {
    // Frames read `name (file:line)`.
    let import_frame = format!(
        "({}",
        crate::analysis::timeline::traced_growth::IMPORT_SYSTEM
    );
    for (frames, _, _) in stacks.iter_mut() {
        if frames.iter().any(|f| f.contains(&import_frame)) {
            frames.insert(0, IMPORTS.to_string());
        }
    }
}

impl AllocProfile {
    /// The profile of these stacks as the source found them; their numbers are also kept
    /// unscaled, for `scale_to` and `attributed_share`.
    pub(super) fn new(
        stacks: Vec<(Vec<String>, u64, u64)>,
        method: &'static str,
        stats: AllocStats,
        warnings: Vec<String>,
        files: BTreeMap<String, String>,
    ) -> AllocProfile {
        AllocProfile {
            sampled: stacks.iter().map(|s| (s.1, s.2)).collect(),
            stacks,
            method,
            stats,
            warnings,
            files,
        }
    }
}

/// How frames name their files: relative to the target's `sys.path`, read now (a program
/// may extend it while it runs; the end is when the frames are named).
pub(super) fn file_names(session: &mut Session, full_filenames: bool) -> FileNames {
    if full_filenames {
        return FileNames::whole();
    }
    let mut view = View::new(&session.target.memory, session.target.spans(), 0);
    FileNames::of_target(&mut view, &session.py, &mut session.types, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_that_import_are_shown_apart() {
        let mut stacks = vec![
            (
                vec![
                    "<module> (app.py:1)".into(),
                    "_find_and_load (<frozen importlib._bootstrap>:1176)".into(),
                    "<module> (lib.py:3)".into(),
                ],
                10,
                1,
            ),
            (vec!["main (app.py:9)".into()], 20, 2),
        ];
        imports_apart(&mut stacks);
        assert_eq!(stacks[0].0[0], IMPORTS);
        assert_eq!(stacks[1].0, vec!["main (app.py:9)".to_string()]);
    }

    #[test]
    fn scaling_keeps_shares_and_hits_the_growth() {
        let mut p = AllocProfile {
            stacks: vec![
                (vec!["main (a.py:1)".into(), "leak (a.py:5)".into()], 300, 3),
                (vec!["main (a.py:1)".into()], 100, 1),
            ],
            method: SAMPLED,
            stats: AllocStats::default(),
            warnings: vec![],
            files: BTreeMap::new(),
            sampled: vec![(300, 3), (100, 1)],
        };
        p.scale_to(4000, 40);
        assert_eq!((p.stacks[0].1, p.stacks[1].1), (3000, 1000));
        assert_eq!((p.stacks[0].2, p.stacks[1].2), (30, 10));
        assert_eq!(
            p.folded(),
            "main (a.py:1);leak (a.py:5) 3000\nmain (a.py:1) 1000\n"
        );
    }
}
