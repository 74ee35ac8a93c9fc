//! `--subprocesses` on every interpreter.
//!
//! * `snapshot`: a master forking 3 workers (each building a known number of objects of its own
//!   type) plus a non-Python child (`sleep`).
//! * `record`: a master whose workers leak, hold steady, and get replaced mid-recording
//!   (tests/targets/recycled_workers.py).

mod common;

use common::{Interp, Table, Target};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Kills the target's whole tree: the master's SIGKILL leaves its children orphaned.
struct TreeGuard(Vec<i32>);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn check(interp: &Interp, table: &mut Table) -> Result<(), String> {
    let target = Target::spawn(interp, "forked_workers.py", &[])?;
    let truth = target.truth.clone();
    let sleep_pid = truth["sleep"].as_i64().ok_or("truth lacks sleep")? as i32;
    let workers = truth["workers"].as_object().ok_or("truth lacks workers")?;
    let mut guard = TreeGuard(vec![sleep_pid]);
    guard
        .0
        .extend(workers.keys().filter_map(|k| k.parse::<i32>().ok()));
    let doc = common::tool_json(&[
        "snapshot",
        "--pid",
        &target.pid_arg(),
        "--subprocesses",
        "--gc-only",
        "--format",
        "json",
    ])?;
    if doc["schema"] != "pymemspy.snapshot-tree/1" {
        return Err(format!("schema {}", doc["schema"]));
    }
    let procs = doc["processes"].as_array().ok_or("no processes")?;
    let found: BTreeSet<i64> = procs.iter().filter_map(|p| p["pid"].as_i64()).collect();
    let mut want: BTreeSet<i64> = workers.keys().filter_map(|k| k.parse().ok()).collect();
    want.insert(i64::from(target.pid));
    if found != want {
        return Err(format!("processes {found:?}, expected {want:?}"));
    }
    let skipped = doc["skipped"].as_array().ok_or("no skipped")?;
    let sleep_note = skipped
        .iter()
        .find(|s| s["pid"].as_i64() == Some(i64::from(sleep_pid)))
        .ok_or_else(|| format!("sleep {sleep_pid} not in skipped: {skipped:?}"))?;
    let reason = sleep_note["reason"].as_str().unwrap_or("");
    if !reason.starts_with("not Python") {
        return Err(format!("sleep skipped for {reason:?}"));
    }
    let count_in = |snap: &Value, ty: &str| -> u64 {
        snap["types"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == ty)
            .and_then(|t| t["count"].as_u64())
            .unwrap_or(0)
    };
    let mut counts = Vec::new();
    for (pid, w) in workers {
        let ty = w["type"].as_str().unwrap_or("?");
        let expected = w["count"].as_u64().unwrap_or(0);
        for p in procs {
            let is_worker = p["pid"].as_i64().map(|x| x.to_string()) == Some(pid.clone());
            let got = count_in(p, ty);
            let want = if is_worker { expected } else { 0 };
            if got != want {
                return Err(format!(
                    "pid {}: {ty} count {got}, expected {want}",
                    p["pid"]
                ));
            }
        }
        let combined = count_in(&doc["combined"], ty);
        if combined != expected {
            return Err(format!(
                "combined {ty} count {combined}, expected {expected}"
            ));
        }
        counts.push(format!("{ty}={expected}"));
    }
    // The table names every process and the skipped child.
    let run = common::run_tool(&[
        "snapshot",
        "--pid",
        &target.pid_arg(),
        "--subprocesses",
        "--gc-only",
    ])
    .ok("table")?;
    let note = format!("note: skipped pid {sleep_pid}: not Python");
    if !run.stdout.contains(&note) || !run.stdout.contains("combined top types") {
        return Err(format!("table lacks {note:?} or the combined view"));
    }
    table.row(vec![
        interp.label.clone(),
        found.len().to_string(),
        skipped.len().to_string(),
        counts.join(" "),
    ]);
    Ok(())
}

#[test]
fn subprocesses_master_with_forked_workers() {
    common::over_matrix(
        common::spread_interpreters(),
        "snapshot --subprocesses",
        "subprocesses",
        &["interpreter", "python procs", "skipped", "exact counts"],
        common::each(check),
    );
}

/// Seconds of `record --subprocesses` per interpreter, and how long the first worker is
/// followed before it is replaced.
const RECORD_S: &str = "8";
const CENSUSES_BEFORE_RECYCLE: Duration = Duration::from_millis(1200);

/// The recorder running in the background, its stderr read as it comes (its log says which
/// processes it follows).
struct Recorder {
    child: std::process::Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Recorder {
    fn start(args: &[&str]) -> Result<Recorder, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pymemspy"))
            .args(args)
            .env("PYMEMSPY_LOG", "warn,pymemspy::record::tree=info")
            // Hermetic: no layout cache from earlier runs.
            .env("PYMEMSPY_NO_CACHE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start pymemspy: {e}"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().ok_or("no stderr pipe")?;
        let sink = stderr.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Ok(Recorder {
            child,
            stderr,
            reader: Some(reader),
        })
    }

    fn text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Wait until the recorder has attached to every pid.
    fn wait_following(&self, pids: &[i64]) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            let missing: Vec<i64> = pids
                .iter()
                .copied()
                .filter(|p| !text.contains(&format!("following pid {p} ")))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the recorder never followed {missing:?}:\n{text}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the recorder to end (killed if it overruns its --duration by far).
    fn finish(mut self) -> Result<(std::process::ExitStatus, String), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = self.child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("the recorder did not end:\n{}", self.text()));
            }
            thread::sleep(Duration::from_millis(50));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Ok((status, self.text()))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid keys of a recording's processes, with each process's document.
fn recorded(doc: &Value) -> Result<BTreeMap<i64, &Value>, String> {
    let procs = doc["processes"].as_array().ok_or("no processes")?;
    Ok(procs
        .iter()
        .filter_map(|p| Some((p["pid"].as_i64()?, p)))
        .collect())
}

/// [count, bytes] of a type in a process's last sample (0 when absent).
fn last_count(p: &Value, ty: &str) -> u64 {
    p["recording"]["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .and_then(|s| s["types"][ty][0].as_u64())
        .unwrap_or(0)
}

fn suspect_in(p: &Value, ty: &str) -> bool {
    p["recording"]["growth"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|g| g["type"] == ty && g["suspect"] == true)
}

fn check_record(interp: &Interp, table: &mut Table) -> Result<(), String> {
    let target = Target::spawn(interp, "recycled_workers.py", &[])?;
    let truth = target.truth.clone();
    let pid_of = |role: &str| truth["workers"][role].as_i64().unwrap_or(0);
    let (leaker, steady, old) = (pid_of("leaker"), pid_of("steady"), pid_of("recycled"));
    let master = i64::from(target.pid);
    let mut guard = TreeGuard(vec![leaker as i32, steady as i32, old as i32]);
    let out = target.scratch().join("tree.json");
    let out_arg = out.display().to_string();
    let recorder = Recorder::start(&[
        "record",
        "--pid",
        &target.pid_arg(),
        "--subprocesses",
        "--gc-only",
        "--duration",
        RECORD_S,
        "--interval",
        "0.2",
        "-o",
        &out_arg,
    ])?;
    // A max-requests recycle in the middle of the recording: once the recorder follows every
    // worker (attaching takes longer with DWARF to read), and a few censuses later.
    recorder.wait_following(&[master, leaker, steady, old])?;
    thread::sleep(CENSUSES_BEFORE_RECYCLE);
    kill(Pid::from_raw(target.pid as i32), Signal::SIGUSR1).map_err(|e| e.to_string())?;
    let recycled_path = target.scratch().join("recycled.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    let recycled: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&recycled_path) {
            break serde_json::from_str(&text).map_err(|e| format!("recycled.json: {e}"))?;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the master did not recycle; log:\n{}",
                target.log_tail()
            ));
        }
        thread::sleep(Duration::from_millis(50));
    };
    let new = recycled["new"].as_i64().ok_or("recycled.json lacks new")?;
    guard.0.push(new as i32);
    if recycled["old"].as_i64() != Some(old) {
        return Err(format!("recycled {recycled}, expected old {old}"));
    }
    let (status, stderr) = recorder.finish()?;
    if !status.success() {
        return Err(format!("record failed ({status}): {stderr}"));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| format!("no {}: {e}", out.display()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON ({e})"))?;
    if doc["schema"] != "pymemspy.record-tree/1" {
        return Err(format!("schema {}", doc["schema"]));
    }
    let procs = recorded(&doc)?;
    let found: BTreeSet<i64> = procs.keys().copied().collect();
    let want: BTreeSet<i64> = [master, leaker, steady, old, new].into();
    if found != want {
        return Err(format!(
            "processes {found:?}, expected {want:?} (master {master}, leaker {leaker}, steady \
             {steady}, replaced {old} by {new})"
        ));
    }
    // Lifetimes: the replaced worker ended, its successor is new, the others ran throughout.
    for (&pid, p) in &procs {
        let (state, is_new, ended) = (&p["state"], &p["new"], &p["ended_s"]);
        let ok = if pid == old {
            state == "exited" && is_new == false && ended.is_number()
        } else if pid == new {
            state == "running" && is_new == true && ended.is_null()
        } else {
            state == "running" && is_new == false && ended.is_null()
        };
        if !ok || (p["root"] == true) != (pid == master) {
            return Err(format!(
                "pid {pid}: state {state}, new {is_new}, ended_s {ended}, root {}",
                p["root"]
            ));
        }
    }
    let (ended_at, born_at) = (&procs[&old]["ended_s"], &procs[&new]["first_seen_s"]);
    if ended_at.as_f64() > born_at.as_f64() {
        return Err(format!(
            "old worker ended at {ended_at}, successor first seen at {born_at}"
        ));
    }
    // Each worker's own heap, exactly, in its last sample.
    let exact = [
        (steady, "__main__.SteadyItem"),
        (old, "__main__.RecycledItem"),
        (new, "__main__.RecycledItem"),
    ];
    for (pid, ty) in exact {
        let got = last_count(procs[&pid], ty);
        if got != 1000 {
            return Err(format!(
                "pid {pid}: {ty} count {got} in its last sample, expected 1000"
            ));
        }
    }
    // The leak is flagged in the leaking worker, and nowhere else.
    let leak = truth["leak_type"].as_str().ok_or("truth lacks leak_type")?;
    for (&pid, p) in &procs {
        if suspect_in(p, leak) != (pid == leaker) {
            let verdict = p["recording"]["growth"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["type"] == leak)
                .map(|g| format!("trend {} over {} samples", g["trend"], g["samples"]))
                .unwrap_or_else(|| "not recorded".into());
            return Err(format!(
                "pid {pid}: {leak} suspect {}, expected {} ({verdict}; {} samples taken)",
                suspect_in(p, leak),
                pid == leaker,
                p["recording"]["samples_taken"]
            ));
        }
        for ty in ["__main__.SteadyItem", "__main__.RecycledItem"] {
            if suspect_in(p, ty) {
                return Err(format!("pid {pid}: {ty} flagged as a leak"));
            }
        }
    }
    let across = doc["suspects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["type"] == leak)
        .ok_or_else(|| format!("{leak} not among the suspects across processes"))?;
    let pids: Vec<i64> = across["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["pid"].as_i64())
        .collect();
    if pids != [leaker] {
        return Err(format!("{leak} suspect in {pids:?}, expected [{leaker}]"));
    }
    let rate = across["processes"][0]["rate_per_s"].as_f64().unwrap_or(0.0);
    // The summary on stderr says the same.
    for line in [
        "ended at".to_string(),
        "new at".to_string(),
        format!("{leak} — in 1 of"),
        "no allocation flamegraph".to_string(),
    ] {
        if !stderr.contains(&line) {
            return Err(format!("summary lacks {line:?}:\n{stderr}"));
        }
    }
    // One denominator in every suspect's row: the processes recorded long enough, as the
    // header says ("3 of 4 processes judged" beside "3 of 3" read as a contradiction).
    let judged = stderr
        .split_once("across processes (")
        .and_then(|(_, rest)| rest.split_once(" of "))
        .map(|(n, _)| n.to_string())
        .ok_or_else(|| format!("no judged count in the summary:\n{stderr}"))?;
    for row in stderr.lines().filter(|l| l.contains(" — in ")) {
        let of = row
            .split_once(" — in ")
            .and_then(|(_, r)| r.split_once(" of "))
            .map(|(_, r)| r.split([' ', ':']).next().unwrap_or(""));
        if of != Some(judged.as_str()) {
            return Err(format!("row {row:?} is not out of {judged}:\n{stderr}"));
        }
    }
    table.row(vec![
        interp.label.clone(),
        found.len().to_string(),
        procs[&old]["recording"]["samples_taken"].to_string(),
        procs[&new]["recording"]["samples_taken"].to_string(),
        format!("{rate:.0}/s (target {})", truth["leak_rate"]),
    ]);
    Ok(())
}

#[test]
fn record_subprocesses_follows_recycled_workers() {
    common::over_matrix(
        common::spread_interpreters(),
        "record --subprocesses",
        "record --subprocesses",
        &[
            "interpreter",
            "processes",
            "replaced: samples",
            "successor: samples",
            "leak rate",
        ],
        |interp, table, _| check_record(interp, table),
    );
}
