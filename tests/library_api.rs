//! The library without the CLI: `pymemspy::Session` attached to a real interpreter running
//! tests/targets/known_heap.py, its census compared with what the script built (every
//! `__main__` type: exact counts). What another Rust tool calling pymemspy gets. On the oldest,
//! a middle and the newest build of the matrix.

mod common;

use common::Interp;

#[test]
fn session_census_through_the_library_is_exact() {
    let all = common::interpreters();
    let mut some: Vec<Interp> = Vec::new();
    for want in [8u32, 12, 15] {
        if let Some(i) = all
            .iter()
            .find(|i| i.build().minor() == want && !i.build().free_threaded)
        {
            some.push(i.clone());
        }
    }
    if some.is_empty() {
        some = all.into_iter().take(1).collect();
    }
    common::over_matrix(
        some,
        "the library's Session: census of known_heap.py",
        "session_census_through_the_library_is_exact",
        &["label", "__main__ types", "objects"],
        |interp, table, failures| {
            let target = common::Target::spawn(interp, "known_heap.py", &[])?;
            let opts = pymemspy::SnapshotOptions::default();
            let mut session = pymemspy::Session::open(target.pid as i32, opts)
                .map_err(|e| format!("attach: {e:#}"))?;
            let report = session.census().map_err(|e| format!("census: {e:#}"))?;
            let built = target.truth["built"]
                .as_object()
                .ok_or("no \"built\" in the truth")?;
            let mut checked = 0;
            for (name, want) in built.iter().filter(|(n, _)| n.starts_with("__main__.")) {
                let want = want.as_u64().unwrap_or(0);
                let got = report
                    .census
                    .types
                    .iter()
                    .find(|t| &t.name == name)
                    .map_or(0, |t| t.count);
                if got != want {
                    failures.push(format!(
                        "[{}] {name}: {got} counted, {want} built",
                        interp.label
                    ));
                }
                checked += 1;
            }
            if checked == 0 {
                failures.push(format!("[{}] no __main__ type in the truth", interp.label));
            }
            table.row(vec![
                interp.label.clone(),
                checked.to_string(),
                report.census.objects.to_string(),
            ]);
            Ok(())
        },
    );
}
