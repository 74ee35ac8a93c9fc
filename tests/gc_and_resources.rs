//! The collector's state and non-memory leaks (descriptors, threads) against what the target
//! reports about itself.

mod common;

use common::Target;
use serde_json::Value;

#[test]
fn gc_state_descriptors_and_threads_match_the_target() {
    common::over_matrix(
        common::interpreters(),
        "gc_state_descriptors_and_threads_match_the_target",
        "gc_and_resources",
        &[
            "label",
            "gc",
            "garbage",
            "fds tool/truth",
            "no owner",
            "threads",
        ],
        |interp, table, failures| {
            if interp.is_free_threaded() {
                common::unsupported(
                    &interp.label,
                    "free-threaded build: no GC lists to report on",
                );
                return Ok(());
            }
            let target = Target::spawn(interp, "leaky_resources.py", &[])?;
            let snap = common::snapshot_json(&target.pid_arg())?;
            let t = &target.truth;
            let (gc, res) = (&snap["gc"], &snap["resources"]);
            let mut fail = |what: &str, tool: &Value, truth: &Value| {
                if tool != truth {
                    failures.push(format!(
                        "[{}] {what}: tool {tool}, truth {truth}",
                        interp.label
                    ));
                }
            };
            fail("gc enabled", &gc["enabled"], &t["gc_enabled"]);
            let thresholds: Vec<Value> = (0..3)
                .map(|i| gc["generations"][i]["threshold"].clone())
                .collect();
            fail("thresholds", &Value::from(thresholds), &t["threshold"]);
            fail("len(gc.garbage)", &gc["garbage"], &t["garbage"]);
            fail("frozen", &gc["frozen"], &t["frozen"]);
            fail("open descriptors", &res["fds"], &t["fds"]);
            let open_objects = res["python_fd_objects"].as_u64().unwrap_or(0)
                - res["python_fd_objects_closed"].as_u64().unwrap_or(0);
            fail(
                "open Python file/socket objects",
                &Value::from(open_objects),
                &t["python_fd_objects_open"],
            );
            fail(
                "closed Python file objects",
                &res["python_fd_objects_closed"],
                &t["python_fd_objects_closed"],
            );
            fail("Python threads", &res["python_threads"], &t["threads"]);
            // Descriptors nobody in Python owns: the raw os.open ones, plus the interpreter's own
            // (stdin/stdout/stderr are owned by sys.std* objects; anything else the test reports).
            let no_owner = res["fds_without_python_owner"].as_u64().unwrap_or(0);
            let raw = t["raw_fds"].as_u64().unwrap_or(0);
            if no_owner < raw {
                failures.push(format!(
                    "[{}] only {no_owner} unowned descriptors, {raw} raw",
                    interp.label
                ));
            }
            table.row(vec![
                interp.label.clone(),
                gc["enabled"].to_string(),
                gc["garbage"].to_string(),
                format!("{}/{}", res["fds"], t["fds"]),
                no_owner.to_string(),
                format!("{}/{}", res["python_threads"], t["threads"]),
            ]);
            Ok(())
        },
    );
}

#[test]
fn record_flags_descriptor_thread_and_cycle_leaks() {
    let interps: Vec<_> = common::interpreters()
        .into_iter()
        .filter(|i| !i.is_free_threaded())
        .collect();
    // A slowly growing target recorded for 20 s: two at once.
    common::over_matrix_overlapped(
        common::spread(interps),
        2,
        "record_flags_descriptor_thread_and_cycle_leaks",
        "record_resources",
        &[
            "label",
            "(fds) file",
            "(fds) socket",
            "(threads) Python",
            "Cycle",
            "gc off",
        ],
        |interp, table, failures| {
            let target = Target::spawn(interp, "resource_leaker.py", &[])?;
            let out = target.scratch().join("rec.json");
            let run = common::run_tool(&[
                "record",
                "--pid",
                &target.pid_arg(),
                // The target grows for 60 steps of 0.2 s, then idles: the recording ends well
                // after, so its last sample is of the final state even on a loaded machine.
                "--duration",
                "20",
                "--interval",
                "0.5",
                "--rate",
                "0",
                "--format",
                "json",
                "-o",
                out.to_str().unwrap_or_default(),
            ]);
            if !run.status.success() {
                failures.push(format!(
                    "[{}] record failed: {}",
                    interp.label,
                    run.describe()
                ));
                return Ok(());
            }
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&out).unwrap_or_default())
                    .unwrap_or_default();
            let growth = doc["growth"].as_array().cloned().unwrap_or_default();
            let suspect = |name: &str| {
                growth
                    .iter()
                    .find(|g| g["type"] == name)
                    .is_some_and(|g| g["suspect"] == Value::Bool(true))
            };
            let gc_warned = doc["warnings"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w.as_str().is_some_and(|s| s.contains("disabled")))
            });
            let checks = [
                ("(fds) file", suspect("(fds) file")),
                ("(fds) socket", suspect("(fds) socket")),
                ("(threads) Python", suspect("(threads) Python")),
                ("__main__.Cycle", suspect("__main__.Cycle")),
                ("gc disabled warning", gc_warned),
            ];
            for (what, ok) in checks {
                if !ok {
                    failures.push(format!("[{}] {what} not flagged", interp.label));
                }
            }
            // The last sample's counts against the target's own, once it stopped growing.
            let final_path = target.scratch().join("truth.json.final");
            let fin: Value =
                serde_json::from_str(&std::fs::read_to_string(&final_path).unwrap_or_default())
                    .unwrap_or_default();
            let last = doc["timeline"]
                .as_array()
                .and_then(|t| t.last())
                .cloned()
                .unwrap_or_default();
            let python_threads = last["types"]["(threads) Python"][0].clone();
            if fin.is_null() {
                failures.push(format!(
                    "[{}] the target did not finish its 60 steps within the 20 s recording",
                    interp.label
                ));
            } else if fin["threads"] != python_threads {
                failures.push(format!(
                    "[{}] threads: tool {python_threads}, target {}",
                    interp.label, fin["threads"]
                ));
            }
            let yes = |b: bool| if b { "flagged" } else { "MISSED" }.to_string();
            table.row(vec![
                interp.label.clone(),
                yes(checks[0].1),
                yes(checks[1].1),
                yes(checks[2].1),
                yes(checks[3].1),
                yes(checks[4].1),
            ]);
            Ok(())
        },
    );
}
