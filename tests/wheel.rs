//! Packaging: `pip install` of the wheel built from this crate (maturin "bin" wheel, like
//! py-spy's) puts a working `pymemspy` on a fresh venv's PATH. Builds the wheel, so it runs in CI
//! (env CI) or when PYMEMSPY_WHEEL_TEST=1; elsewhere it prints a note.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn run(cmd: &mut Command, what: &str) -> Result<common::Run, String> {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    let r = common::run_with_timeout(c, Duration::from_secs(1200));
    if r.status.success() {
        Ok(r)
    } else {
        Err(format!("{what}: {}", r.describe()))
    }
}

#[test]
fn pip_installed_wheel_snapshots_a_process() {
    if std::env::var_os("CI").is_none() && std::env::var_os("PYMEMSPY_WHEEL_TEST").is_none() {
        common::skip("set PYMEMSPY_WHEEL_TEST=1 to build and install the wheel (CI runs it)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("pymemspy-wheel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("scratch dir");
    let py = "python3";
    let builder = work.join("build-venv");
    let fresh = work.join("fresh-venv");
    let result = (|| -> Result<(), String> {
        run(Command::new(py).args(["-m", "venv"]).arg(&builder), "venv")?;
        run(
            Command::new(builder.join("bin/pip")).args(["install", "-q", "maturin>=1.5,<2"]),
            "pip install maturin",
        )?;
        // Reuse this build's target directory: only the binary is relinked.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        run(
            Command::new(builder.join("bin/maturin"))
                .args(["build", "--release", "-o"])
                .arg(work.join("wheels"))
                .current_dir(&root)
                .env("CARGO_TARGET_DIR", &target),
            "maturin build",
        )?;
        let wheel = std::fs::read_dir(work.join("wheels"))
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or("no wheel built")?;
        run(
            Command::new(py).args(["-m", "venv"]).arg(&fresh),
            "fresh venv",
        )?;
        run(
            Command::new(fresh.join("bin/pip"))
                .args(["install", "-q"])
                .arg(&wheel),
            "pip install wheel",
        )?;
        let tool = fresh.join("bin/pymemspy");
        let child = common::KillOnDrop::spawn(
            py,
            &[
                "-c",
                "import time\nx=[[i] for i in range(5000)]\ntime.sleep(60)",
            ],
        );
        std::thread::sleep(Duration::from_millis(700));
        let snap = run(
            Command::new(&tool).args([
                "snapshot",
                "--pid",
                &child.pid().to_string(),
                "--format",
                "json",
            ]),
            "pymemspy snapshot from the venv",
        )?;
        let doc: serde_json::Value =
            serde_json::from_str(&snap.stdout).map_err(|e| e.to_string())?;
        if doc["schema"] != "pymemspy.snapshot/1"
            || doc["totals"]["objects"].as_u64().unwrap_or(0) < 5000
        {
            return Err(format!(
                "unexpected snapshot: {}",
                &snap.stdout[..snap.stdout.len().min(300)]
            ));
        }
        run(
            Command::new(&tool).args(["completions", "bash"]),
            "completions",
        )?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = result {
        panic!("{e}");
    }
}
