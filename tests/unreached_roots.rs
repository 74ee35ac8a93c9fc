//! What no module or thread reaches is named for what holds it (issue 33, item 8), and path
//! steps name their fields (tests/targets/unreached_heap.py): self-referring objects left to a
//! disabled collector are filed under the unreachable-cycle root, objects kept by a reference
//! only C owns under the no-referrer root, each to the object; an asyncio Task's coroutine is
//! reached by `._coro`, and on 3.11+ the coroutine it awaits by `cr_await`.

mod common;

use common::Target;
use serde_json::Value;

const NO_REFERRER: &str = "(no Python referrer: held by C code or the interpreter)";
const IN_CYCLE: &str = "(unreachable cycle: garbage not yet collected, unless C code holds it)";

fn why(pid: &str, ty: &str) -> Result<Value, String> {
    let run = common::run_tool(&[
        "why",
        "--pid",
        pid,
        "--type",
        ty,
        "--format",
        "json",
        "--max-paths",
        "100",
    ]);
    if !run.status.success() {
        return Err(format!("why --type {ty}: {}", run.describe()));
    }
    serde_json::from_str(&run.stdout).map_err(|e| format!("why --type {ty}: not JSON: {e}"))
}

/// Objects of the report's groups whose root starts with `root`, and of all groups.
fn under(report: &Value, root: &str) -> (u64, u64) {
    let groups = report["paths"].as_array().cloned().unwrap_or_default();
    let count = |g: &Value| g["count"].as_u64().unwrap_or(0);
    let total = groups.iter().map(count).sum();
    let mine = groups
        .iter()
        .filter(|g| g["root"].as_str().is_some_and(|r| r.starts_with(root)))
        .map(count)
        .sum();
    (mine, total)
}

/// The edges of each path group, as (edge, type) pairs.
fn hops(report: &Value) -> Vec<Vec<(String, String)>> {
    report["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            g["hops"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    (
                        h[0].as_str().unwrap_or("?").to_string(),
                        h[1].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect()
        })
        .collect()
}

fn pair(edge: &str, ty: &str) -> (String, String) {
    (edge.to_string(), ty.to_string())
}

#[test]
fn unreached_objects_are_named_for_their_holder() {
    common::over_matrix(
        common::interpreters()
            .into_iter()
            .filter(|i| !i.is_free_threaded())
            .collect::<Vec<_>>(),
        "unreached_objects_are_named_for_their_holder",
        "unreached_roots",
        &["label", "in cycles", "held by C", "Task path"],
        |interp, table, failures| {
            let target = Target::spawn(interp, "unreached_heap.py", &[])?;
            let pid = target.pid_arg();
            let label = &interp.label;
            let mut row = vec![label.clone()];
            let cycles = why(&pid, "__main__.InCycle")?;
            let want = target.truth["cycles"].as_u64();
            let (got, total) = under(&cycles, IN_CYCLE);
            if Some(got) != want || Some(total) != want {
                failures.push(format!(
                    "[{label}] InCycle: {got} of {total} under {IN_CYCLE:?}, truth {want:?}\n{cycles}"
                ));
            }
            row.push(format!("{got}/{want:?}"));
            let held = why(&pid, "__main__.HeldByC")?;
            let want = target.truth["held_by_c"].as_u64();
            let (got, total) = under(&held, NO_REFERRER);
            if Some(got) != want || Some(total) != want {
                failures.push(format!(
                    "[{label}] HeldByC: {got} of {total} under {NO_REFERRER:?}, truth {want:?}\n{held}"
                ));
            }
            row.push(format!("{got}/{want:?}"));
            // The Task: `__main__ (module) .task → _asyncio.Task ._coro → coroutine`, and on
            // 3.11+ (coroutines embed their frame) `… cr_await → coroutine`.
            let coros = why(&pid, "coroutine")?;
            let paths = hops(&coros);
            let outer = vec![pair(".task", "_asyncio.Task"), pair("._coro", "coroutine")];
            let mut inner = outer.clone();
            inner.push(pair("cr_await", "coroutine"));
            let embedded = target
                .truth_version()
                .split('.')
                .nth(1)
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m >= 11);
            let ok = paths.contains(&outer) && (!embedded || paths.contains(&inner));
            if !ok {
                failures.push(format!(
                    "[{label}] coroutine paths {paths:?}, want {outer:?}{}",
                    if embedded {
                        format!(" and {inner:?}")
                    } else {
                        String::new()
                    }
                ));
            }
            row.push(if ok { "ok" } else { "FAIL" }.into());
            table.row(row);
            Ok(())
        },
    );
}
