//! The collector's state and non-memory leaks (descriptors, threads) against what the target
//! reports about itself.

mod common;

use common::{Table, Target};
use serde_json::Value;

#[test]
fn gc_state_descriptors_and_threads_match_the_target() {
    let mut table = Table::new(&[
        "label",
        "gc",
        "garbage",
        "fds tool/truth",
        "no owner",
        "threads",
    ]);
    let mut failures = Vec::new();
    for interp in common::interpreters() {
        if interp.is_free_threaded() {
            println!("note [{}] skipped: free-threaded build", interp.label);
            continue;
        }
        let target = match Target::spawn(&interp, "leaky_resources.py", &[]) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("[{}] {e}", interp.label));
                continue;
            }
        };
        let run = common::run_tool(&["snapshot", "--pid", &target.pid_arg(), "--format", "json"]);
        if !run.status.success() {
            failures.push(format!(
                "[{}] tool failed: {}",
                interp.label,
                run.describe()
            ));
            continue;
        }
        let snap: Value = serde_json::from_str(&run.stdout).unwrap_or_default();
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
    }
    table.print("gc_state_descriptors_and_threads_match_the_target");
    common::assert_no_failures("gc_and_resources", &failures);
}
