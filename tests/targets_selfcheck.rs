//! The targets' ground truth must be a fixed point: the objects alive after
//! the truth is published are exactly the ones it counts. This needs no
//! pymemspy at all, so it guards the targets themselves on every interpreter
//! (a failure here means the truth, not the tool, is wrong).

mod common;

const SCENARIOS: &[&[&str]] = &[&[], &["--freeze"], &["--deadlock"]];

#[test]
fn known_heap_truth_is_a_fixed_point() {
    common::over_matrix(
        common::interpreters(),
        "known_heap_truth_is_a_fixed_point",
        "known_heap_truth_is_a_fixed_point",
        &["label", "args", "result", "time"],
        |interp, table, failures| {
            for args in SCENARIOS {
                let dir = common::ScratchDir::new("selfcheck");
                let truth = dir.path().join("truth.json");
                let truth = truth.to_string_lossy();
                let mut argv = vec![truth.as_ref()];
                argv.extend_from_slice(args);
                let run = common::run_script(
                    interp,
                    "known_heap.py",
                    &argv,
                    &[("PYMEMSPY_SELFCHECK", "1")],
                );
                // known_heap.py prints one "SELFCHECK OK|FAIL ..." verdict line.
                let verdict = run
                    .stderr
                    .lines()
                    .rfind(|l| l.starts_with("SELFCHECK OK") || l.starts_with("SELFCHECK FAIL"))
                    .unwrap_or("no verdict")
                    .to_string();
                let ok =
                    run.status.success() && !run.timed_out && verdict.starts_with("SELFCHECK OK");
                if !ok {
                    failures.push(format!("[{}] {:?}: {}", interp.label, args, run.describe()));
                }
                table.row(vec![
                    interp.label.clone(),
                    args.join(" "),
                    verdict,
                    format!("{:.2}s", run.elapsed.as_secs_f64()),
                ]);
            }
            Ok(())
        },
    );
}
