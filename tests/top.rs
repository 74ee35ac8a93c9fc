//! `pymemspy top` in a real terminal: tmux runs the tool against tests/targets/growth_target.py
//! (which retains `__main__.Retained` forever), the test reads the screen with
//! `tmux capture-pane`, presses keys with `tmux send-keys` and checks the tool quits cleanly.
//!
//! Two interpreters are enough here (the census itself is tested on all of them elsewhere).
//! Without tmux the test is skipped with a note, unless CI is set, where it fails.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{Interp, Target};

const SCRIPT: &str = "growth_target.py";
/// How long the screen may take to show what is expected (first census, a key's effect).
const SCREEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Printed by the shell around the tool once it has exited, with its exit status.
const EXITED: &str = "pymemspy-top-exited:";

/// A private tmux server (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        Tmux {
            socket: format!("pymemspy-top-{}-{tag}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .map_err(|e| format!("tmux {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tmux {args:?}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn screen(&self) -> Result<String, String> {
        self.cmd(&["capture-pane", "-p", "-t", "top"])
    }

    /// Wait until the screen satisfies `ok`; the last screen either way.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let screen = self.screen()?;
            if ok(&screen) {
                return Ok(screen);
            }
            if start.elapsed() > SCREEN_TIMEOUT {
                return Err(format!(
                    "screen never showed {what}; last screen:\n{screen}"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The COUNT column of the `__main__.Retained` row.
fn retained_count(screen: &str) -> Option<u64> {
    let row = screen
        .lines()
        .find(|l| l.trim_end().ends_with("__main__.Retained"))?;
    row.split_whitespace().next()?.replace(',', "").parse().ok()
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A few interpreters: a recent pyenv build and a Debian one when listed (else the first with a
/// GIL), and every free-threaded one.
fn chosen() -> Vec<Interp> {
    let all: Vec<Interp> = common::interpreters();
    let (free, gil): (Vec<Interp>, Vec<Interp>) =
        all.into_iter().partition(|i| i.is_free_threaded());
    // A shared-libpython 3.12 (pyenv) and a stripped Debian 3.14.
    let wants: [fn(&common::Build) -> bool; 2] = [
        |b| b.version == (3, 12) && !b.runtime_in_executable,
        |b| b.version == (3, 14) && b.stripped && !b.via_loader,
    ];
    let mut picked: Vec<Interp> = wants
        .iter()
        .filter_map(|want| gil.iter().find(|i| want(&i.build())).cloned())
        .collect();
    if picked.is_empty() {
        picked.extend(gil.into_iter().take(1));
    }
    picked.extend(free);
    picked
}

fn check(interp: &Interp) -> Result<(), String> {
    let target = Target::spawn(interp, SCRIPT, &[])?;
    let tmux = Tmux::new(&interp.label);
    let tool = env!("CARGO_BIN_EXE_pymemspy");
    let shell = format!(
        "'{tool}' top --pid {} --interval 0.5; echo {EXITED}$?; sleep 600",
        target.pid_arg()
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "40",
        &shell,
    ])?;
    let first = tmux.wait_for("__main__.Retained and RSS", |s| {
        s.contains("__main__.Retained") && s.contains("RSS ")
    })?;
    // Later censuses of the same session see the objects retained since the first one.
    let before = retained_count(&first).ok_or_else(|| format!("no count:\n{first}"))?;
    tmux.wait_for("the Retained count growing", |s| {
        retained_count(s).is_some_and(|n| n > before)
    })?;
    if !first.contains("sort: bytes") {
        return Err(format!("default sort is not bytes:\n{first}"));
    }
    tmux.cmd(&["send-keys", "-t", "top", "g"])?;
    tmux.wait_for("the growth sort header", |s| {
        s.lines().any(|l| l.starts_with("sort: growth"))
    })?;
    tmux.cmd(&["send-keys", "-t", "top", "q"])?;
    let last = tmux.wait_for("the tool exiting", |s| s.contains(EXITED))?;
    let status = last
        .lines()
        .find_map(|l| l.trim().strip_prefix(EXITED))
        .unwrap_or("?")
        .trim()
        .to_string();
    if status != "0" {
        return Err(format!("top exited with status {status}:\n{last}"));
    }
    // The alternate screen was left: the table is gone from the restored screen.
    if last.contains("__main__.Retained") {
        return Err(format!("terminal not restored after quitting:\n{last}"));
    }
    Ok(())
}

#[test]
fn top_shows_growth_and_quits_in_tmux() {
    if !tmux_available() {
        common::skip("tmux not found (apt-get install -y tmux)");
        return;
    }
    let mut failures = Vec::new();
    for interp in chosen() {
        match check(&interp) {
            Ok(()) => println!("[{}] ok", interp.label),
            Err(e) => failures.push(format!("[{}] {e}", interp.label)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
