//! Shared harness for the integration tests: which interpreters to test,
//! spawning Python targets that publish their own ground truth, running the
//! pymemspy binary, and printing result tables.

// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a target may take to build its heap and publish its truth.
pub const TRUTH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one run of the tool may take before the harness kills it.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a target may take to run to completion (self-check mode).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(20);

const DEFAULT_PYTHONS: &str = "/opt/pymemspy-pythons";

/// One interpreter under test: a label and the command that runs Python.
#[derive(Clone, Debug)]
pub struct Interp {
    pub label: String,
    /// The command to run python, e.g. just the binary, or the dynamic loader
    /// followed by its options and the binary.
    pub argv_prefix: Vec<String>,
}

impl Interp {
    /// Free-threaded builds (no GIL, no GC lists: objects live in mimalloc heaps).
    pub fn is_free_threaded(&self) -> bool {
        self.build().free_threaded
    }

    /// What this build is, asked of the interpreter and its files once (see `Build`).
    pub fn build(&self) -> Build {
        Build::of(self)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.argv_prefix[0]);
        // Keep tests/targets/ free of __pycache__ written by a dozen versions.
        cmd.args(&self.argv_prefix[1..])
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if self.is_free_threaded() {
            // Really run without the GIL: an extension module could otherwise turn it back on.
            cmd.env("PYTHON_GIL", "0");
        }
        cmd
    }
}

/// The interpreters to test, in list order, plus one run through the loader.
///
/// The list comes from `$PYMEMSPY_INTERPRETERS`, else
/// `${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}/interpreters.txt`. Without a
/// list, CI fails (a silently shrunk matrix would pass for the wrong reason)
/// and a developer machine falls back to `python3` on PATH.
pub fn interpreters() -> Vec<Interp> {
    let list = interpreters_file();
    let text = match fs::read_to_string(&list) {
        Ok(text) => text,
        Err(err) if std::env::var_os("CI").is_some() => panic!(
            "interpreter list {} unreadable ({err}); CI must test the full matrix \
             (set PYMEMSPY_INTERPRETERS or PYMEMSPY_PYTHONS)",
            list.display()
        ),
        Err(err) => {
            eprintln!(
                "note: interpreter list {} unreadable ({err}); falling back to python3 on PATH \
                 (label local-python3)",
                list.display()
            );
            return vec![Interp {
                label: "local-python3".into(),
                argv_prefix: vec!["python3".into()],
            }];
        }
    };
    let mut interps = parse_interpreters(&text, &list);
    match loader_case(&interps) {
        Some(extra) => interps.push(extra),
        None => eprintln!("note: no debian-3.X interpreter listed; no via-loader case"),
    }
    interps
}

fn interpreters_file() -> PathBuf {
    if let Some(path) = std::env::var_os("PYMEMSPY_INTERPRETERS") {
        return PathBuf::from(path);
    }
    let root = std::env::var_os("PYMEMSPY_PYTHONS").unwrap_or_else(|| DEFAULT_PYTHONS.into());
    Path::new(&root).join("interpreters.txt")
}

fn parse_interpreters(text: &str, origin: &Path) -> Vec<Interp> {
    let mut interps = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (label, path) = line.split_once('\t').unwrap_or_else(|| {
            panic!(
                "{}: expected LABEL<TAB>PATH, got {line:?}",
                origin.display()
            )
        });
        interps.push(Interp {
            label: label.trim().to_string(),
            argv_prefix: vec![path.trim().to_string()],
        });
    }
    assert!(
        !interps.is_empty(),
        "{} lists no interpreter",
        origin.display()
    );
    interps
}

/// `debian-3.X-via-loader`: the pristine `python3.X.dist` beside a listed
/// `debian-3.X` binary, started through its suite's ld.so (the binary's
/// PT_INTERP is then not the process's main executable, which the tool must
/// cope with). Prefers 3.13, else the highest 3.X listed.
fn loader_case(interps: &[Interp]) -> Option<Interp> {
    let minor = |i: &Interp| -> Option<u32> { i.label.strip_prefix("debian-3.")?.parse().ok() };
    let chosen = interps
        .iter()
        .filter_map(|i| Some((minor(i)?, i)))
        .max_by_key(|(m, _)| (*m == 13, *m))?;
    let (minor, interp) = chosen;
    let binary = Path::new(&interp.argv_prefix[0]);
    let root = binary.parent()?.parent()?.parent()?;
    let dist = format!("{}.dist", binary.display());
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    Some(Interp {
        label: format!("debian-3.{minor}-via-loader"),
        argv_prefix: vec![
            s(root.join("usr/lib64/ld-linux-x86-64.so.2")),
            "--library-path".into(),
            s(root.join("usr/lib/x86_64-linux-gnu")),
            dist,
        ],
    })
}

/// A test that cannot check (all or part of) what it is for says so: the line goes to the
/// output and to the skip log that `scripts/test.sh` prints and counts at the end
/// (`$PYMEMSPY_SKIP_LOG`), so a skip never reads as a plain `ok`. In CI nothing may be skipped:
/// the machine has everything, so a skip there is a failure.
pub fn skip(reason: &str) {
    let line = format!("skipped: {}: {reason}", test_name());
    log_skip(&line);
    assert!(
        std::env::var_os("CI").is_none(),
        "{line} (CI must run every check: install what it needs in .ci/run)"
    );
}

/// An interpreter the product does not support for what this test checks (a known limit, named
/// in the README or docs/): logged and counted like a skip, but not a failure in CI.
pub fn unsupported(label: &str, reason: &str) {
    log_skip(&format!("unsupported: {} [{label}]: {reason}", test_name()));
}

/// A check that fails by its `Err` alone, as `over_matrix` takes checks: on every interpreter,
/// free-threaded ones included.
pub fn each(
    check: impl Fn(&Interp, &mut Table) -> Result<(), String>,
) -> impl FnMut(&Interp, &mut Table, &mut Vec<String>) -> Result<(), String> {
    move |interp, table, _| check(interp, table)
}

fn test_name() -> String {
    // The test harness names each test's thread after the test.
    thread::current().name().unwrap_or("test").to_string()
}

fn log_skip(line: &str) {
    println!("{line}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("PYMEMSPY_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// A venv with numpy and pandas made by scripts/provision-venvs.sh.
#[derive(Clone, Debug)]
pub struct Venv {
    pub interp: Interp,
    pub numpy: String,
}

/// The venvs listed in `${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}/venvs.txt`
/// (label<TAB>python<TAB>numpy version). Err: why none can be tested. In CI a missing list,
/// or fewer than two venvs, fails the test instead: the numpy layouts would go untested.
pub fn numpy_venvs() -> Result<Vec<Venv>, String> {
    Ok(venv_list("venvs.txt", 2)?
        .into_iter()
        .map(|(interp, numpy)| Venv { interp, numpy })
        .collect())
}

/// The (interpreter, third column) of each usable line of a venv list that
/// scripts/provision-venvs.sh writes under `${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}`. Err:
/// why none can be tested (the caller skips). In CI a missing list, or fewer than `ci_min`
/// venvs, fails the test instead: what they carry would go untested.
fn venv_list(name: &str, ci_min: usize) -> Result<Vec<(Interp, String)>, String> {
    let root = std::env::var_os("PYMEMSPY_PYTHONS").unwrap_or_else(|| DEFAULT_PYTHONS.into());
    let list = Path::new(&root).join(name);
    let ci = std::env::var_os("CI").is_some();
    let text = match fs::read_to_string(&list) {
        Ok(text) => text,
        Err(err) => {
            assert!(
                !ci,
                "{} unreadable ({err}); CI must run scripts/provision-venvs.sh",
                list.display()
            );
            return Err(format!(
                "{} unreadable ({err}); run scripts/provision-venvs.sh",
                list.display()
            ));
        }
    };
    let venvs: Vec<(Interp, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (label, python, third) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            let interp = Interp {
                label: label.trim().to_string(),
                argv_prefix: vec![python.trim().to_string()],
            };
            Path::new(python.trim())
                .exists()
                .then(|| (interp, third.trim().to_string()))
        })
        .collect();
    assert!(
        !ci || venvs.len() >= ci_min,
        "{} lists {} usable venv(s); CI needs at least {ci_min}",
        list.display(),
        venvs.len()
    );
    if venvs.is_empty() {
        return Err(format!("{} lists no usable venv", list.display()));
    }
    Ok(venvs)
}

/// A venv with Django, Flask, gunicorn, SQLAlchemy and pydantic made by
/// scripts/provision-venvs.sh (the "web" venvs, on a few interpreters).
#[derive(Clone, Debug)]
pub struct WebVenv {
    pub interp: Interp,
    /// `django=5.2 flask=3.1 …`, as the script wrote them.
    pub versions: String,
}

impl Case for WebVenv {
    fn label(&self) -> &str {
        &self.interp.label
    }
}

/// The venvs listed in `${PYMEMSPY_PYTHONS:-/opt/pymemspy-pythons}/web-venvs.txt`
/// (label<TAB>python<TAB>versions). Err: why none can be tested (the caller skips through
/// `skip`). In CI a missing or empty list fails the test instead: the real frameworks would go
/// untested.
pub fn web_venvs() -> Result<Vec<WebVenv>, String> {
    Ok(venv_list("web-venvs.txt", 1)?
        .into_iter()
        .map(|(interp, versions)| WebVenv { interp, versions })
        .collect())
}

/// Absolute path of a script in tests/targets/.
pub fn target_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/targets")
        .join(name)
}

/// A private scratch directory, removed on drop.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(tag: &str) -> ScratchDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("pymemspy-it-{}-{seq}-{tag}", std::process::id());
        let path = std::env::temp_dir().join(name);
        // A leftover from a crashed run with a recycled pid is stale.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        ScratchDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A running target process that has published its truth. Killed on drop.
pub struct Target {
    child: Child,
    pub pid: u32,
    pub truth: Value,
    pub log: PathBuf,
    // Declared last so the directory outlives the child while it is killed.
    dir: ScratchDir,
}

impl Target {
    /// Start `script` under `interp` with the truth path as first argument,
    /// wait until the truth is published and the target has gone idle.
    pub fn spawn(interp: &Interp, script: &str, args: &[&str]) -> Result<Target, String> {
        let dir = ScratchDir::new(&sanitize(&interp.label));
        let truth_path = dir.path().join("truth.json");
        let log = dir.path().join("target.log");
        let child = spawn_logged(interp, script, &truth_path, args, &log)?;
        let mut target = Target {
            pid: child.id(),
            child,
            truth: Value::Null,
            log,
            dir,
        };
        target.truth = target.wait_for_truth(&truth_path)?;
        target.wait_until_idle()?;
        Ok(target)
    }

    fn wait_for_truth(&mut self, truth_path: &Path) -> Result<Value, String> {
        let deadline = Instant::now() + TRUTH_TIMEOUT;
        loop {
            // The target publishes with os.replace: once present it is whole.
            if let Ok(text) = fs::read_to_string(truth_path) {
                return serde_json::from_str(&text)
                    .map_err(|e| format!("truth is not JSON ({e}): {text:.200}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "target exited ({status}) before publishing its truth; log:\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no truth after {TRUTH_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// The truth file appears a few bytecodes before the target reaches its
    /// idle sleep (or lock wait); wait until the main thread is asleep so the
    /// tool reads a quiescent heap.
    fn wait_until_idle(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut asleep = 0;
        while asleep < 3 {
            if Instant::now() > deadline {
                return Err(format!(
                    "target did not go idle; state {:?}",
                    process_state(self.pid)
                ));
            }
            thread::sleep(POLL);
            asleep = if process_state(self.pid) == Some('S') {
                asleep + 1
            } else {
                0
            };
        }
        Ok(())
    }

    pub fn pid_arg(&self) -> String {
        self.pid.to_string()
    }

    /// The last lines of the target's stdout/stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 20)
    }

    /// A required integer field of the truth document.
    pub fn truth_u64(&self, key: &str) -> u64 {
        self.truth[key]
            .as_u64()
            .unwrap_or_else(|| panic!("truth lacks integer {key:?}"))
    }

    pub fn truth_version(&self) -> String {
        self.truth["version"].as_str().unwrap_or("?").to_string()
    }

    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // SIGKILL also ends a SIGSTOPped or deadlocked target.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_logged(
    interp: &Interp,
    script: &str,
    truth_path: &Path,
    args: &[&str],
    log: &Path,
) -> Result<Child, String> {
    let out = File::create(log).map_err(|e| format!("log {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| format!("log: {e}"))?;
    interp
        .command()
        .arg(target_script(script))
        .arg(truth_path)
        .args(args)
        .env_remove("PYMEMSPY_SELFCHECK")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", interp.argv_prefix))
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Scheduler state letter of a process (R, S, D, T, t, Z, ...), if it exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain ") ".
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// Poll until `pid` is in scheduler state `want`, up to `timeout`.
pub fn wait_for_state(pid: u32, want: char, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let state = process_state(pid);
        if state == Some(want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("pid {pid} state {state:?}, wanted {want:?}"));
        }
        thread::sleep(POLL);
    }
}

/// A helper child process (e.g. a non-Python `sleep`), killed on drop.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn spawn(program: &str, args: &[&str]) -> KillOnDrop {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        KillOnDrop(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One finished run of a child process.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Run {
    /// One-line summary of how the process ended, for failure messages.
    pub fn describe(&self) -> String {
        let how = if self.timed_out {
            "timed out and was killed".to_string()
        } else {
            self.status.to_string()
        };
        format!("{how}; stderr: {}", self.stderr.trim())
    }

    /// Exited with status 0 within its time.
    pub fn succeeded(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// This run if it succeeded, else the error `"{what} failed: {how it ended; stderr}"`.
    pub fn ok(self, what: &str) -> Result<Run, String> {
        if self.succeeded() {
            Ok(self)
        } else {
            Err(format!("{what} failed: {}", self.describe()))
        }
    }
}

/// Run the tool (`run_tool`) and require success: its stdout, or an error naming the
/// subcommand with how the run ended and its stderr.
pub fn tool(args: &[&str]) -> Result<String, String> {
    let what = args.first().copied().unwrap_or("pymemspy");
    Ok(run_tool(args).ok(what)?.stdout)
}

/// `tool(args)` parsed as one JSON document.
pub fn tool_json(args: &[&str]) -> Result<Value, String> {
    let out = tool(args)?;
    serde_json::from_str(&out).map_err(|e| format!("bad JSON: {e}"))
}

/// `snapshot --pid PID --format json`, parsed.
pub fn snapshot_json(pid: &str) -> Result<Value, String> {
    tool_json(&["snapshot", "--pid", pid, "--format", "json"])
}

/// Run the pymemspy binary with `args`, killing it after TOOL_TIMEOUT.
///
/// Each run gets an empty layout cache of its own (`XDG_CACHE_HOME`), so that no test depends
/// on what earlier runs, or the developer's own use of the tool, left in `~/.cache/pymemspy`.
pub fn run_tool(args: &[&str]) -> Run {
    let cache = tempfile::tempdir().expect("temporary cache directory");
    run_tool_env(args, &[("XDG_CACHE_HOME", cache.path().as_os_str())])
}

/// `run_tool` with extra environment variables (and no layout cache of its own: pass
/// `XDG_CACHE_HOME` or `PYMEMSPY_NO_CACHE` to decide).
pub fn run_tool_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pymemspy"));
    // Log output would break the "one line of stderr" expectations.
    cmd.args(args).env_remove("RUST_LOG");
    cmd.env_remove("PYMEMSPY_NO_CACHE");
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_with_timeout(cmd, TOOL_TIMEOUT)
}

/// Run a target script to completion (e.g. in self-check mode).
pub fn run_script(interp: &Interp, script: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = interp.command();
    cmd.arg(target_script(script)).args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_with_timeout(cmd, RUN_TIMEOUT)
}

/// Run `cmd` capturing its output, killing it once `timeout` has passed.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for killed child");
        }
        thread::sleep(POLL);
    };
    let elapsed = start.elapsed();
    Run {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed,
        timed_out,
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A plain-text table, printed with aligned columns.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(String::len).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.len());
                }
            }
        }
        let mut out = String::new();
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        for row in std::iter::once(&self.header)
            .chain(std::iter::once(&rule))
            .chain(&self.rows)
        {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        out
    }

    pub fn print(&self, title: &str) {
        println!("\n== {title}\n{}", self.render());
    }
}

/// Fail the test with every collected failure, after the table was printed.
pub fn assert_no_failures(test: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{test}: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One case of a test matrix: an interpreter, or a venv. Its label prefixes the error that
/// ends its check.
pub trait Case {
    fn label(&self) -> &str;
}

impl Case for Interp {
    fn label(&self) -> &str {
        &self.label
    }
}

impl Case for Venv {
    fn label(&self) -> &str {
        &self.interp.label
    }
}

/// The interpreter-matrix loop: run `check` on each case (`interpreters()`, a filtered list of
/// them, numpy venvs), then print the table under `title` and fail the test `test` with every
/// failure collected (`assert_no_failures`).
///
/// `check` adds its own rows (none, one or several) to the table, and pushes the failures it
/// finds while still checking as they are (labelled by it). An `Err` ends that case's check
/// and is collected as `[label] error`. A case skipped or unsupported says so (`skip`,
/// `unsupported`, a note) and returns `Ok(())`.
pub fn over_matrix<C: Case>(
    cases: impl IntoIterator<Item = C>,
    title: &str,
    test: &str,
    header: &[&str],
    mut check: impl FnMut(&C, &mut Table, &mut Vec<String>) -> Result<(), String>,
) {
    let mut table = Table::new(header);
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = check(&case, &mut table, &mut failures) {
            failures.push(format!("[{}] {e}", case.label()));
        }
    }
    table.print(title);
    assert_no_failures(test, &failures);
}

/// What an interpreter build is, as the tests choose features by it (never by its label):
/// asked of the interpreter itself (version, `sysconfig`'s `Py_GIL_DISABLED`, `Py_DEBUG`) and
/// read from its files (where the runtime is linked, symbols, a debug file), once per
/// interpreter and cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// `sys.version_info[:2]`.
    pub version: (u32, u32),
    /// `Py_GIL_DISABLED`: no GIL, no GC lists; objects live in mimalloc heaps.
    pub free_threaded: bool,
    /// `Py_DEBUG` (`sys.gettotalrefcount` exists).
    pub py_debug: bool,
    /// The runtime is linked into the executable (no `libpython*.so` needed).
    pub runtime_in_executable: bool,
    /// The file holding the runtime has no symbol table (a distribution's build).
    pub stripped: bool,
    /// A build-id debug file for the runtime's file lies in its tree's `usr/lib/debug`
    /// (or `/usr/lib/debug`): DWARF although stripped.
    pub debug_file: bool,
    /// Started through the dynamic loader (`ld.so … python`), not as the main executable.
    pub via_loader: bool,
    /// The executable (the last word of the command).
    pub executable: PathBuf,
}

impl Build {
    /// `minor` of 3.minor.
    pub fn minor(&self) -> u32 {
        self.version.1
    }

    /// At least 3.`minor`.
    pub fn at_least(&self, minor: u32) -> bool {
        self.version >= (3, minor)
    }

    /// The runtime linked into an executable that keeps its symbols (a `--disable-shared`
    /// build from source): what a "static" interpreter means to the tests.
    pub fn is_static(&self) -> bool {
        self.runtime_in_executable && !self.stripped
    }

    /// The interpreter family, as the long end-to-end tests spread over them (`spread`): the
    /// minor version plus what changes how the tool reads the build: free-threaded, `Py_DEBUG`,
    /// a static runtime with its symbols, or stripped with no debug file (tables and
    /// heuristics only). Builds with symbols, in the executable, a `libpython` or a debug file,
    /// are one family per minor (e.g. pyenv's shared 3.13 and Debian's 3.13 with its debug file).
    pub fn family(&self) -> String {
        let mut name = format!("{}.{}", self.version.0, self.version.1);
        if self.free_threaded {
            name.push('t');
        }
        if self.py_debug {
            name.push_str(" Py_DEBUG");
        }
        if self.is_static() && !self.free_threaded {
            name.push_str(" static");
        }
        if self.stripped && !self.debug_file {
            name.push_str(" stripped");
        }
        name
    }

    fn of(interp: &Interp) -> Build {
        static CACHE: Mutex<BTreeMap<Vec<String>, Build>> = Mutex::new(BTreeMap::new());
        let key = interp.argv_prefix.clone();
        if let Some(build) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return build.clone();
        }
        let build = Build::query(interp);
        CACHE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, build.clone());
        build
    }

    fn query(interp: &Interp) -> Build {
        const ASK: &str = "import json, os, sys, sysconfig\n\
            c = sysconfig.get_config_var\n\
            lib = os.path.join(c('LIBDIR') or '', c('INSTSONAME') or '')\n\
            print(json.dumps({'version': list(sys.version_info[:2]),\n\
                'gil_disabled': bool(c('Py_GIL_DISABLED')),\n\
                'py_debug': hasattr(sys, 'gettotalrefcount'), 'lib': lib,\n\
                'executable': sys.executable}))";
        let mut cmd = Command::new(&interp.argv_prefix[0]);
        cmd.args(&interp.argv_prefix[1..])
            .args(["-c", ASK])
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let run = run_with_timeout(cmd, RUN_TIMEOUT);
        let facts: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "[{}] cannot ask the interpreter what it is ({e}): {}",
                interp.label,
                run.describe()
            )
        });
        let n = |i: usize| facts["version"][i].as_u64().unwrap_or(0) as u32;
        // The binary run: the last word of the command (through the loader, `sys.executable`
        // names the loader), or where a bare name like `python3` resolved.
        let executable = match (interp.argv_prefix.len(), facts["executable"].as_str()) {
            (1, Some(exe)) if !Path::new(&interp.argv_prefix[0]).is_absolute() => {
                PathBuf::from(exe)
            }
            _ => PathBuf::from(interp.argv_prefix.last().expect("a command")),
        };
        let exe = fs::read(&executable).unwrap_or_default();
        let needs_libpython = goblin::elf::Elf::parse(&exe)
            .is_ok_and(|elf| elf.libraries.iter().any(|l| l.starts_with("libpython")));
        let lib = facts["lib"].as_str().map(PathBuf::from);
        let runtime_bytes = match (&lib, needs_libpython) {
            (Some(lib), true) => fs::read(lib).unwrap_or_default(),
            _ => exe,
        };
        let (stripped, build_id) = match goblin::elf::Elf::parse(&runtime_bytes) {
            Ok(elf) => (elf.syms.is_empty(), build_id(&elf, &runtime_bytes)),
            Err(_) => (false, None),
        };
        let debug_file = build_id.is_some_and(|id| {
            let rel = format!(".build-id/{}/{}.debug", &id[..2], &id[2..]);
            let tree = executable.parent().and_then(Path::parent);
            tree.into_iter()
                .map(|usr| usr.join("lib/debug"))
                .chain([PathBuf::from("/usr/lib/debug")])
                .any(|dir| dir.join(&rel).is_file())
        });
        Build {
            version: (n(0), n(1)),
            free_threaded: facts["gil_disabled"].as_bool().unwrap_or(false),
            py_debug: facts["py_debug"].as_bool().unwrap_or(false),
            runtime_in_executable: !needs_libpython,
            stripped,
            debug_file,
            via_loader: interp.argv_prefix.len() > 1,
            executable,
        }
    }
}

/// The GNU build id of an ELF file, in hex.
fn build_id(elf: &goblin::elf::Elf, bytes: &[u8]) -> Option<String> {
    let headers = elf.iter_note_headers(bytes).into_iter().flatten();
    let sections = elf
        .iter_note_sections(bytes, Some(".note.gnu.build-id"))
        .into_iter()
        .flatten();
    headers
        .chain(sections)
        .filter_map(Result::ok)
        .find(|n| n.n_type == goblin::elf::note::NT_GNU_BUILD_ID && n.name == "GNU")
        .map(|n| n.desc.iter().map(|b| format!("{b:02x}")).collect())
}

/// The long end-to-end tests (recordings over time, busy targets, threads, torn reads, process
/// trees, live tracing cycles) run once per interpreter *family* (`Build::family`), not on
/// every build: what is exact per build (census, sizes, layouts) is checked on every build by
/// the other tests. Of a family's members, the variants (another binary of a tree already in
/// the family, e.g. `-nopie`; a start through the loader) are left out, and which of the
/// remaining members runs rotates with the test's name, so that over the suite each of them
/// runs some long tests. Every build not run is logged as `spread:` in the skip log (counted
/// apart from skips: it is a planned choice, not a check that could not run).
///
/// `PYMEMSPY_FULL_MATRIX=1` runs every build (a release check, or hunting a build's bug).
pub fn spread(interps: Vec<Interp>) -> Vec<Interp> {
    if std::env::var_os("PYMEMSPY_FULL_MATRIX").is_some_and(|v| v != "0") {
        return interps;
    }
    let test = test_name();
    // family -> (candidates, in list order), each with its index in `interps`.
    let mut families: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut family_of = Vec::new();
    let mut trees: Vec<(String, PathBuf)> = Vec::new();
    for (i, interp) in interps.iter().enumerate() {
        let build = interp.build();
        let family = build.family();
        let tree = build
            .executable
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let variant = build.via_loader || trees.contains(&(family.clone(), tree.clone()));
        trees.push((family.clone(), tree));
        let members = families.entry(family.clone()).or_default();
        if !variant {
            members.push(i);
        }
        family_of.push(family);
    }
    let hash = test.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let chosen: Vec<Option<usize>> = family_of
        .iter()
        .map(|f| {
            let members = &families[f];
            (!members.is_empty()).then(|| members[(hash % members.len() as u64) as usize])
        })
        .collect();
    let mut kept = Vec::new();
    for (i, interp) in interps.iter().enumerate() {
        match chosen[i] {
            Some(c) if c == i => kept.push(interp.clone()),
            Some(c) => log_skip(&format!(
                "spread: {test} [{}]: family {} run on {}",
                interp.label, family_of[i], interps[c].label
            )),
            // A family of variants only (e.g. only a loader case listed): run them.
            None => kept.push(interp.clone()),
        }
    }
    kept
}

/// `spread(interpreters())`.
pub fn spread_interpreters() -> Vec<Interp> {
    spread(interpreters())
}

/// `over_matrix` with up to `jobs` cases checked at once, for checks that mostly wait (an idle
/// or slowly growing target recorded over seconds of wall time), not for ones that measure CPU
/// time or race a busy target. Each case fills a table and failures of its own; they are
/// merged in the cases' order, so the output reads as `over_matrix`'s.
pub fn over_matrix_overlapped<C: Case + Sync>(
    cases: impl IntoIterator<Item = C>,
    jobs: usize,
    title: &str,
    test: &str,
    header: &[&str],
    check: impl Fn(&C, &mut Table, &mut Vec<String>) -> Result<(), String> + Sync,
) {
    let cases: Vec<C> = cases.into_iter().collect();
    let next = AtomicUsize::new(0);
    type Checked = Option<(Table, Vec<String>)>;
    let done: Mutex<Vec<Checked>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    // Workers carry the test's name: skip lines name the test.
    let name = test_name();
    thread::scope(|s| {
        for _ in 0..jobs.clamp(1, cases.len().max(1)) {
            thread::Builder::new()
                .name(name.clone())
                .spawn_scoped(s, || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let mut table = Table::new(header);
                    let mut failures = Vec::new();
                    if let Err(e) = check(case, &mut table, &mut failures) {
                        failures.push(format!("[{}] {e}", case.label()));
                    }
                    done.lock().unwrap_or_else(|p| p.into_inner())[i] = Some((table, failures));
                })
                .expect("spawn a matrix worker");
        }
    });
    let mut table = Table::new(header);
    let mut failures = Vec::new();
    for (rows, fails) in done
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
    {
        table.rows.extend(rows.rows);
        failures.extend(fails);
    }
    table.print(title);
    assert_no_failures(test, &failures);
}
