//! ARCHITECTURE.md lists every module: each `.rs` file under `src/` and `tests/` must be named
//! there by its path relative to `src/` or `tests/` (`heap/arenas.rs`, `common/mod.rs`), bare or
//! with its folder in front (`src/heap/arenas.rs`, `tests/common/mod.rs`). No interpreter needed.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as paths relative to it with `/` separators, sorted.
fn rust_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {d:?}: {e}"));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(dir).expect("under its directory");
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                found.push(parts.join("/"));
            }
        }
    }
    found.sort();
    found
}

/// Whether `doc` names `rel` as a whole path: bare, or after `folder/`, and not as the tail of a
/// longer name (`fresh_pages.rs` does not mention `pages.rs`; `heap/graph.rs` does not mention
/// `graph.rs` of another folder).
fn mentions(doc: &str, folder: &str, rel: &str) -> bool {
    let prefixed = format!("{folder}/{rel}");
    [rel, prefixed.as_str()].iter().any(|name| {
        doc.match_indices(name).any(|(at, _)| {
            let before = doc[..at].chars().next_back();
            let after = doc[at + name.len()..].chars().next();
            let boundary = |c: Option<char>| {
                c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '/' || c == '.'))
            };
            boundary(before) && after.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
    })
}

#[test]
fn architecture_md_names_every_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for folder in ["src", "tests"] {
        for rel in rust_files(&root.join(folder)) {
            if !mentions(&doc, folder, &rel) {
                missing.push(format!("{folder}/{rel}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not mention {} file(s) (name each by its path relative to src/ or \
         tests/, with one line on what it holds):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn a_mention_is_a_whole_path() {
    let doc = "`heap/fresh_pages.rs` and `src/heap/graph.rs`; tests: `tests/common/mod.rs`.";
    assert!(mentions(doc, "src", "heap/fresh_pages.rs"));
    assert!(!mentions(doc, "src", "heap/pages.rs"));
    assert!(mentions(doc, "src", "heap/graph.rs"));
    assert!(!mentions(doc, "src", "graph.rs"));
    assert!(mentions(doc, "tests", "common/mod.rs"));
    assert!(!mentions(doc, "src", "mod.rs"));
}

/// The imports point down ARCHITECTURE.md's table and make no cycle, between layers, between
/// heap's subsystems or between heap's files (`scripts/import-graph.py` draws and checks them).
#[test]
fn imports_point_down_and_make_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/import-graph.py"))
        .output()
        .expect("python3 runs scripts/import-graph.py");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "scripts/import-graph.py found problems:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No function over 80 lines without a `Long:` sentence in its doc comment saying why it is
/// kept whole (`scripts/long-functions.py` lists them).
#[test]
fn long_functions_say_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("scripts/long-functions.py"))
        .arg(root.join("src"))
        .output()
        .expect("python3 runs scripts/long-functions.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "functions over 80 lines without a reason:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
