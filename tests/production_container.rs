//! A target in its own PID and mount namespace, chrooted into a Debian interpreter tree (what a
//! container looks like from the host): pymemspy runs on the host with nothing installed in the
//! "container", takes the host pid, reads the binary and its debug file through /proc, reports
//! the in-container pid, and counts the GC heap exactly.

mod common;

use common::{ScratchDir, Table};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The container: `unshare` and the python it forked (pid 1 inside). Both killed on drop.
struct Container {
    unshare: Child,
    python: Option<i32>,
    work: PathBuf,
    _dir: ScratchDir,
}

impl Drop for Container {
    fn drop(&mut self) {
        // Pid 1 of a namespace ignores signals it has no handler for, except SIGKILL.
        if let Some(p) = self.python {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// A Debian tree with a pristine interpreter (`usr/bin/python3.X.dist`, standard loader path):
/// (label, tree root, binary name inside the tree). Prefers 3.13.
fn debian_tree() -> Option<(String, PathBuf, String)> {
    let mut found: Vec<(u32, String, PathBuf, String)> = Vec::new();
    for i in common::interpreters() {
        // A distribution's (stripped) build, started as itself; the first binary of each tree.
        let build = i.build();
        if !build.stripped || build.via_loader {
            continue;
        }
        let minor = build.minor();
        let bin = Path::new(&i.argv_prefix[0]);
        let dist = PathBuf::from(format!("{}.dist", bin.display()));
        let root = bin.parent()?.parent()?.parent()?.to_path_buf();
        if dist.is_file() && !found.iter().any(|f| f.2 == root) {
            let name = dist.file_name()?.to_string_lossy().into_owned();
            found.push((minor, i.label.clone(), root, name));
        }
    }
    found.sort_by_key(|(m, ..)| (*m == 13, *m));
    found.pop().map(|(_, l, r, n)| (l, r, n))
}

fn start(tree: &Path, binary: &str) -> Result<Container, String> {
    let dir = ScratchDir::new("container");
    let root = dir.path().join("root");
    let work = dir.path().join("work");
    for d in [root.join("usr"), root.join("work"), work.clone()] {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    std::os::unix::fs::symlink("usr/lib64", root.join("lib64")).map_err(|e| e.to_string())?;
    for f in ["known_heap.py", "_truth.py"] {
        std::fs::copy(common::target_script(f), work.join(f)).map_err(|e| e.to_string())?;
    }
    // Inside new PID and mount namespaces: bind the tree's usr/ and the work dir into the
    // scratch root (private mounts: the host sees neither), then chroot and exec python.
    let script = format!(
        "mount --bind \"$1/usr\" \"$2/root/usr\" && mount --bind \"$2/work\" \"$2/root/work\" && \
         exec chroot \"$2/root\" /usr/bin/{binary} /work/known_heap.py /work/truth.json"
    );
    let log = std::fs::File::create(dir.path().join("log")).map_err(|e| e.to_string())?;
    let unshare = Command::new("unshare")
        .args([
            "--pid",
            "--mount",
            "--fork",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg(script)
        .arg("sh")
        .arg(tree)
        .arg(dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run unshare: {e}"))?;
    let mut c = Container {
        unshare,
        python: None,
        work,
        _dir: dir,
    };
    let deadline = Instant::now() + common::TRUTH_TIMEOUT;
    while !c.work.join("truth.json").exists() {
        if Instant::now() > deadline || c.unshare.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(c._dir.path().join("log")).unwrap_or_default();
            return Err(format!("the container published no truth; log: {log}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let parent = c.unshare.id() as i32;
    c.python = children_of(parent).into_iter().next();
    let pid = c.python.ok_or("no python under unshare")? as u32;
    let mut asleep = 0;
    while asleep < 3 {
        thread::sleep(Duration::from_millis(20));
        asleep = if common::process_state(pid) == Some('S') {
            asleep + 1
        } else {
            0
        };
    }
    Ok(c)
}

fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn target_in_other_pid_and_mount_namespace() {
    let Some((label, tree, binary)) = debian_tree() else {
        common::skip("no debian-3.X tree with a .dist interpreter in the interpreter list");
        return;
    };
    let c = start(&tree, &binary).expect("start the container");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(c.work.join("truth.json")).unwrap())
            .expect("truth JSON");
    let pid = c.python.unwrap().to_string();
    let run = common::run_tool(&["snapshot", "--pid", &pid, "--gc-only", "--format", "json"]);
    assert!(run.status.success(), "{}", run.describe());
    let doc: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let mut failures = Vec::new();
    if doc["namespace_pid"].as_i64() != Some(1) {
        failures.push(format!(
            "namespace_pid {}, expected 1",
            doc["namespace_pid"]
        ));
    }
    let want = truth["total_objects"].as_u64().unwrap_or(0);
    if doc["totals"]["objects"].as_u64() != Some(want) {
        failures.push(format!(
            "objects {}, expected {want}",
            doc["totals"]["objects"]
        ));
    }
    for (name, v) in truth["types"].as_object().expect("truth types") {
        let got = doc["types"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == name.as_str())
            .and_then(|t| t["count"].as_u64());
        if got != v[0].as_u64() {
            failures.push(format!("{name}: count {got:?}, expected {}", v[0]));
        }
    }
    // The layout came through the container's root, debug file included when the tree has one.
    let run = common::run_tool(&["layout", "--pid", &pid]);
    assert!(run.status.success(), "{}", run.describe());
    let layout: Value = serde_json::from_str(&run.stdout).expect("layout JSON");
    let sources = layout["layout"]["sources"].to_string();
    // The table names the in-container pid; the process tree from `unshare` finds the python.
    let run = common::run_tool(&["snapshot", "--pid", &pid, "--gc-only", "--top", "3"]);
    if !run.stdout.contains("(pid 1 in its container)") {
        failures.push(format!(
            "table header: {}",
            run.stdout.lines().next().unwrap_or("")
        ));
    }
    let outer = c.unshare.id().to_string();
    let run = common::run_tool(&[
        "snapshot",
        "--pid",
        &outer,
        "--subprocesses",
        "--gc-only",
        "--format",
        "json",
    ]);
    let tree_doc: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    let pids: Vec<String> = tree_doc["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["pid"].to_string())
        .collect();
    if pids != [pid.clone()] {
        failures.push(format!(
            "--subprocesses from unshare found {pids:?}: {}",
            run.describe()
        ));
    }
    let mut table = Table::new(&[
        "tree",
        "host pid",
        "pid inside",
        "objects",
        "layout sources",
    ]);
    table.row(vec![
        label,
        pid,
        doc["namespace_pid"].to_string(),
        doc["totals"]["objects"].to_string(),
        sources,
    ]);
    table.print("target in its own PID + mount namespace, chrooted");
    common::assert_no_failures("container", &failures);
}
