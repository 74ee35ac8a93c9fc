//! Retention flamegraph and `why` against targets that know what they hold.

mod common;

use common::Target;

/// Sum of the folded stacks' weights whose path names `needle`.
fn weight_under(folded: &str, needle: &str) -> u64 {
    folded
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn retention_flamegraph_puts_app_cache_under_its_name() {
    common::over_matrix(
        common::interpreters(),
        "retention_flamegraph_puts_app_cache_under_its_name",
        "retention_flamegraph",
        &["label", "truth bytes", "under app_cache", "ratio", "svg"],
        |interp, table, failures| {
            let target = Target::spawn(interp, "retention_heap.py", &[])?;
            let truth = target.truth_u64("app_cache_bytes");
            let folded_path = target.scratch().join("r.folded");
            let svg_path = target.scratch().join("r.svg");
            let pid = target.pid_arg();
            let a = common::run_tool(&[
                "snapshot",
                "--pid",
                &pid,
                "--format",
                "collapsed",
                "-o",
                folded_path.to_str().unwrap_or_default(),
            ]);
            let b = common::run_tool(&[
                "snapshot",
                "--pid",
                &pid,
                "--format",
                "flamegraph",
                "-o",
                svg_path.to_str().unwrap_or_default(),
            ]);
            if !a.status.success() || !b.status.success() {
                failures.push(format!(
                    "[{}] tool failed: {} {}",
                    interp.label,
                    a.describe(),
                    b.describe()
                ));
                return Ok(());
            }
            let folded = std::fs::read_to_string(&folded_path).unwrap_or_default();
            let under = weight_under(&folded, ".app_cache ");
            let ratio = under as f64 / truth.max(1) as f64;
            let svg = std::fs::read_to_string(&svg_path).unwrap_or_default();
            let svg_ok =
                svg.contains("<svg") && svg.contains("app_cache") && svg.contains("Retention");
            // The title counts the objects it holds (it said "(0 objects)" on every heap).
            let titled: Option<u64> = svg
                .split_once("Retention: what holds the memory (")
                .and_then(|(_, r)| r.split_once(" objects)"))
                .and_then(|(n, _)| n.parse().ok());
            if titled.unwrap_or(0) == 0 {
                failures.push(format!(
                    "[{}] title counts {titled:?} objects",
                    interp.label
                ));
            }
            // Exactly the census's objects on this idle target (one interpreter: a launch more).
            if interp.build().minor() == 12 && titled.is_some() {
                let run = common::run_tool(&["snapshot", "--pid", &pid, "--format", "json"]);
                let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
                if doc["totals"]["objects"].as_u64() != titled {
                    failures.push(format!(
                        "[{}] title counts {titled:?} objects, the census {}",
                        interp.label, doc["totals"]["objects"]
                    ));
                }
            }
            if !(0.9..=1.3).contains(&ratio) {
                failures.push(format!(
                    "[{}] {under} bytes under app_cache, truth {truth} ({:.0}%)",
                    interp.label,
                    ratio * 100.0
                ));
            }
            if !svg_ok {
                failures.push(format!("[{}] SVG does not name app_cache", interp.label));
            }
            table.row(vec![
                interp.label.clone(),
                truth.to_string(),
                under.to_string(),
                format!("{:.1}%", ratio * 100.0),
                if svg_ok { "ok" } else { "bad" }.into(),
            ]);
            Ok(())
        },
    );
}

#[test]
fn why_explains_sessions_and_cycles() {
    common::over_matrix(
        common::interpreters(),
        "why_explains_sessions_and_cycles",
        "why",
        &[
            "label",
            "sessions path",
            "closure cycle",
            "class attr cycle",
        ],
        |interp, table, failures| {
            let target = Target::spawn(interp, "retention_heap.py", &[])?;
            let pid = target.pid_arg();
            let s = common::run_tool(&[
                "why",
                "--pid",
                &pid,
                "--type",
                "__main__.Session",
                "--format",
                "json",
            ]);
            let n = common::run_tool(&["why", "--pid", &pid, "--type", "__main__.Node"]);
            if !s.status.success() || !n.status.success() {
                failures.push(format!(
                    "[{}] tool failed: {} {}",
                    interp.label,
                    s.describe(),
                    n.describe()
                ));
                return Ok(());
            }
            let report: serde_json::Value = serde_json::from_str(&s.stdout).unwrap_or_default();
            let top = &report["paths"][0];
            let hops = top["hops"].to_string();
            let sessions_ok = report["objects"].as_u64() == Some(20000)
                && top["count"].as_u64() == Some(20000)
                && hops.contains("registry")
                && hops.contains("sessions");
            let closure_ok = n.stdout.contains(".kept") && n.stdout.contains("cell");
            let class_ok = n.stdout.contains(".Cache") && n.stdout.contains(".keep");
            for (ok, what) in [
                (
                    sessions_ok,
                    "sessions path names registry and sessions with x20000",
                ),
                (closure_ok, "closure-kept cycle explained"),
                (class_ok, "class-attribute cycle explained"),
            ] {
                if !ok {
                    failures.push(format!(
                        "[{}] {what}: {}\n{}",
                        interp.label, s.stdout, n.stdout
                    ));
                }
            }
            let yes = |b: bool| if b { "ok" } else { "MISSING" }.to_string();
            table.row(vec![
                interp.label.clone(),
                yes(sessions_ok),
                yes(closure_ok),
                yes(class_ok),
            ]);
            Ok(())
        },
    );
}
