//! Hostile memory: the whole pipeline over a copy of a real Python heap in which random words
//! were corrupted (wild pointers, self-pointing types, huge sizes, cycles). Never a panic, never
//! a hang, never unbounded memory: what does not validate is skipped and counted.

use crate::analysis::census;
use crate::analysis::census::complete;
use crate::analysis::retention;
use crate::analysis::retention::dominators;
use crate::analysis::retention::heap_graph;
use crate::analysis::retention::heap_source::LiveSource;
use crate::analysis::retention::why;
use crate::heap::gc::gc_lists::{self, WalkLimits};
use crate::heap::objects::types::TypeTable;
use crate::process::memory::fake::FakeMemory;
use crate::process::{Memory, Target, View};
use crate::python::{resolve, ResolveOptions};
use std::time::{Duration, Instant};

const HEAP: &str = "
import sys, time
class Node:
    def __init__(s, i): s.i = i; s.next = None; s.name = 'n%d' % i
nodes = [Node(i) for i in range(3000)]
for a, b in zip(nodes, nodes[1:]): a.next = b
cache = {('k%d' % i): [i, str(i) * 20, (i, float(i))] for i in range(3000)}
print('ready', flush=True)
time.sleep(60)
";

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A real heap copied, then corrupted more each round, with every analysis run on it: none may
/// panic or take a minute in a round. Long: the test's steps in order (start python3 or say it
/// skipped, copy its memory, then each round corrupt the copy and run every analysis path), all on
/// the one copy and resolved layout.
#[test]
fn corrupted_heaps_never_panic_or_hang() {
    use std::io::BufRead;
    let mut child = match std::process::Command::new("python3")
        .args(["-c", HEAP])
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            // Said like the integration tests' skips (tests/common: `skip`): in the output and
            // the skip log, and a failure in CI, whose machine has a python3.
            let line = "skipped: corrupted_heaps_never_panic_or_hang: no python3 on PATH";
            println!("{line}");
            eprintln!("{line}");
            if let Some(log) = std::env::var_os("PYMEMSPY_SKIP_LOG") {
                use std::io::Write as _;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                {
                    let _ = writeln!(f, "{line}");
                }
            }
            assert!(std::env::var_os("CI").is_none(), "{line} (CI must run it)");
            return;
        }
    };
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    let pid = child.id() as i32;
    let target = Target::attach(pid).expect("attach");
    let py = resolve(&target, &ResolveOptions::default()).expect("resolve");
    // Copy every readable, writable mapping (the heap, arenas, data) into a fake address space.
    let mut pristine: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut spans = Vec::new();
    for m in target.maps.iter().filter(|m| m.readable) {
        let mut buf = vec![0u8; (m.end - m.start) as usize];
        if m.end - m.start > (64 << 20) || target.memory.read(m.start, &mut buf).is_err() {
            continue;
        }
        spans.push(crate::process::view::Span {
            start: m.start,
            end: m.end,
        });
        pristine.push((m.start, buf));
    }
    let _ = child.kill();
    let _ = child.wait();
    let writable: Vec<usize> = (0..pristine.len())
        .filter(|&i| {
            target
                .maps
                .iter()
                .any(|m| m.start == pristine[i].0 && m.path.is_none())
        })
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..12u64 {
        let mut fake = FakeMemory::default();
        let mut regions = pristine.clone();
        // Corrupt more words each round: from a few hundred to many thousands.
        let hits = 200 * (round + 1) * (round + 1);
        for _ in 0..hits {
            let r = writable[(rng.next() as usize) % writable.len().max(1)];
            let (start, data) = &mut regions[r];
            let off = (rng.next() as usize % (data.len().max(8) - 7)) & !7;
            let value = match rng.next() % 5 {
                0 => rng.next(),                                // noise
                1 => *start + (rng.next() % data.len() as u64), // a wild in-range pointer
                2 => *start + off as u64,                       // pointing at itself
                3 => u64::MAX >> (rng.next() % 16),             // huge sizes
                _ => 0,
            };
            data[off..off + 8].copy_from_slice(&value.to_le_bytes());
        }
        for (start, data) in regions {
            fake.map(start, data);
        }
        let began = Instant::now();
        let mut view = View::new(&fake, spans.clone(), 64 << 20);
        let mut types = TypeTable::new(&py);
        let limits = WalkLimits {
            max_nodes: 1 << 22,
            collecting_wait: Duration::from_millis(5),
            attempts: 2,
        };
        let walked = gc_lists::walk(&mut view, &py, &limits);
        let all = complete::find_all(&mut view, &py, &mut types, &walked.objects);
        let placement = census::Placement {
            blocks: &all.blocks,
            statics: &[],
            malloc_outside: true,
        };
        let c = census::count(&mut view, &py.layout, &mut types, &all.objects, &placement);
        // The census path proper: threads over the arenas, GC lists left where they leave them.
        let (_, _, counted) = complete::count_all(&mut view, &py, &mut types, &[], true);
        // The whole-heap analyses' path: the object list, the graph, the tree, dominators.
        let listed = complete::list_all(&mut view, &py, &mut types);
        let mut src = LiveSource::new(&mut view, &py, &mut types);
        let graph = heap_graph::capture(&mut src, listed.objects);
        let mut src = heap_graph::DumpSource::new(&graph);
        let tree = retention::build_on_graph(&graph, &mut src);
        let _ = why::explain(&mut src, &tree, "__main__.Node", 5, pid, None);
        let profile = retention::profile(&mut src, tree);
        let _ = dominators::compute(&graph);
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "round {round}: took {:?}",
            began.elapsed()
        );
        eprintln!(
            "round {round}: {hits} words corrupted, {} objects, {} bad types, {} bad sizes; \
             census path: {} objects",
            c.objects, c.bad_type, c.bad_size, counted.objects
        );
        assert!(c.objects <= all.objects.len() as u64);
        assert!(!profile.stacks.is_empty() || all.objects.is_empty());
    }
}
