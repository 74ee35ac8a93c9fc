//! Which sampled stacks are whole, and which were read cut off while their thread ran on.

use std::collections::HashMap;

/// A function's identity: (name, file, first line).
pub(super) type FuncKey = (String, String, u32);

/// Which sampled stacks are whole, from the thread's first frame to the one running (issue 33:
/// a Django process's flamegraph had 27% of its bytes on stacks of one to three frames with no
/// thread at the root). A stack read while its thread runs on can come out cut: the frame
/// chain changes under the reader, and ends early on a link that cannot be read, or on a
/// frame that has just been left (a generator's frame, whose link is cleared when it
/// suspends). So a stack is whole when its chain ended on a null link at least once, and its
/// outermost frame is its thread's root: the outermost function of most of that thread's
/// samples (a thread's first frame does not change while it runs), or module code (an import
/// started from C, or the program's own `<module>`, is a root of its own).
#[derive(Default)]
pub(super) struct StackJudge {
    /// Per interned stack: ended on a null link at least once; its thread; its root.
    stacks: HashMap<u32, JudgedStack>,
    /// Per thread state: how many whole-read samples each root function had.
    roots: HashMap<u64, HashMap<FuncKey, u64>>,
}

struct JudgedStack {
    null_ended: bool,
    tstate: u64,
    root: Option<(FuncKey, bool)>,
}

impl StackJudge {
    pub(super) fn saw(&mut self, id: u32, tstate: u64, whole: bool, root: Option<(FuncKey, bool)>) {
        if whole {
            if let Some((key, _)) = &root {
                *self
                    .roots
                    .entry(tstate)
                    .or_default()
                    .entry(key.clone())
                    .or_default() += 1;
            }
        }
        let e = self.stacks.entry(id).or_insert(JudgedStack {
            null_ended: false,
            tstate,
            root,
        });
        e.null_ended |= whole;
    }

    /// The root most of a thread's whole-read samples had.
    fn thread_root(&self, tstate: u64) -> Option<&FuncKey> {
        self.roots
            .get(&tstate)?
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k)
    }

    /// Whole, or never judged (an empty stack: `<no Python frame>`).
    pub(super) fn is_whole(&self, id: u32) -> bool {
        let Some(s) = self.stacks.get(&id) else {
            return true;
        };
        let Some((key, module)) = &s.root else {
            return true;
        };
        s.null_ended && (*module || self.thread_root(s.tstate) == Some(key))
    }

    pub(super) fn cut_count(&self) -> u64 {
        self.stacks.keys().filter(|&&id| !self.is_whole(id)).count() as u64
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;

    fn key(name: &str) -> FuncKey {
        (name.to_string(), "/app/x.py".to_string(), 1)
    }

    #[test]
    fn a_stack_is_whole_from_its_threads_root() {
        let mut j = StackJudge::default();
        // Thread 1: most samples start at `run`; one read came out as `as_sql` alone.
        for _ in 0..5 {
            j.saw(0, 1, true, Some((key("run"), false)));
        }
        j.saw(1, 1, true, Some((key("as_sql"), false)));
        // A chain that broke on an unreadable link.
        j.saw(2, 1, false, Some((key("run"), false)));
        // Module code is a root of its own (an import started from C).
        j.saw(3, 1, true, Some((key("<module>"), true)));
        // Another thread, its own root.
        j.saw(4, 2, true, Some((key("serve"), false)));
        assert!(j.is_whole(0));
        assert!(!j.is_whole(1));
        assert!(!j.is_whole(2));
        assert!(j.is_whole(3));
        assert!(j.is_whole(4));
        assert_eq!(j.cut_count(), 2);
        // Read whole once, the same frames are whole.
        j.saw(2, 1, true, Some((key("run"), false)));
        assert!(j.is_whole(2));
    }
}
