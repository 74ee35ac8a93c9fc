//! `pymemspy exporter` scraped by a real Prometheus (Debian's `prometheus` package, installed
//! by .ci/run): the figures Prometheus stores are checked against the targets' own truth.
//!
//! The end-to-end check runs on ONE interpreter, the first GIL build of the list: what it
//! checks is the exporter and its contract with Prometheus (series, staleness, formats), not
//! the census per build, which every other test file covers on the whole matrix; CI's budget
//! does not allow a Prometheus per interpreter.
//!
//! Targets (tests/targets/): recycled_workers.py, a pre-fork master whose workers are a leaker,
//! a steady holder of exactly 1000 `__main__.SteadyItem`, and one recycled on SIGUSR1;
//! hostile_types.py, 100,000 types, every 100th with a 3 KB name full of characters to escape
//! (and a few of 10 KB, which the census itself refuses).

mod common;

use common::{Interp, KillOnDrop, ScratchDir, Target};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for something Prometheus must come to show (a few scrapes, never a timing
/// assertion: the test fails only if it never shows).
const EVENTUALLY: Duration = Duration::from_secs(40);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// GET `path` on 127.0.0.1:`port` (HTTP/1.0, so the body ends with the connection).
fn http_get(port: u16, path: &str, accept: Option<&str>) -> Result<(String, String), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{accept}\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {text:.200}"))?;
    Ok((head.to_string(), body.to_string()))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query: (labels, value) of each series of the result vector.
fn query(prom: u16, q: &str) -> Result<Vec<(Value, f64)>, String> {
    let (_, body) = http_get(
        prom,
        &format!("/api/v1/query?query={}", url_encode(q)),
        None,
    )?;
    let doc: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body:.300}"))?;
    if doc["status"] != "success" {
        return Err(format!("query {q} failed: {body:.300}"));
    }
    Ok(doc["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let v = r["value"][1].as_str().and_then(|v| v.parse().ok());
            (r["metric"].clone(), v.unwrap_or(f64::NAN))
        })
        .collect())
}

/// Poll `check` until it returns Some, for at most EVENTUALLY; the last state on failure.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>, String>) -> T {
    let deadline = Instant::now() + EVENTUALLY;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(250));
    }
    panic!("{what}: not seen within {EVENTUALLY:?} (last: {last})");
}

/// The single value of a query, when it has exactly one series.
fn one(prom: u16, q: &str) -> Result<Option<f64>, String> {
    let r = query(prom, q)?;
    match r.as_slice() {
        [(_, v)] => Ok(Some(*v)),
        [] => Ok(None),
        more => Err(format!("{q}: {} series: {more:?}", more.len())),
    }
}

fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn exporter(args: &[&str]) -> KillOnDrop {
    let cache =
        std::env::temp_dir().join(format!("pymemspy-exporter-cache-{}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_pymemspy"))
        .arg("exporter")
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting pymemspy exporter");
    KillOnDrop(child)
}

/// Wait until the exporter answers /metrics.
fn wait_listening(port: u16) {
    eventually("the exporter answering /metrics", || {
        Ok(http_get(port, "/metrics", None).ok().map(|_| ()))
    });
}

fn first_gil_interpreter() -> Option<Interp> {
    common::interpreters()
        .into_iter()
        .find(|i| !i.is_free_threaded())
}

fn start_prometheus(dir: &Path, prom: u16, exporter_port: u16) -> KillOnDrop {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: \
             pymemspy\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
        ),
    )
    .expect("writing prometheus.yml");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("prometheus.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .expect("starting prometheus");
    KillOnDrop(child)
}

#[test]
fn prometheus_scrapes_leaker_steady_and_recycled_workers() {
    if !tool_available("prometheus") {
        return common::skip("prometheus not installed (apt-get install prometheus)");
    }
    let Some(interp) = first_gil_interpreter() else {
        return common::skip("no GIL interpreter listed");
    };
    let target = Target::spawn(&interp, "recycled_workers.py", &[])
        .unwrap_or_else(|e| panic!("[{}] target: {e}", interp.label));
    let pid_of = |role: &str| target.truth["workers"][role].as_i64().expect("worker pid");
    let (leaker, steady, old) = (pid_of("leaker"), pid_of("steady"), pid_of("recycled"));
    let master = target.truth_u64("master");
    let version = target.truth_version();
    // The scratch directory is in the target's command line (the truth path): only this test's
    // processes are followed, not the rest of the machine's.
    let scratch = target
        .scratch()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let dir = ScratchDir::new("prometheus");
    let (ep, pp) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{ep}");
    let _exporter = exporter(&[
        "--listen",
        &listen,
        "--match",
        &scratch,
        "--interval",
        "1s",
        "--top-types",
        "200",
        "--cpu-budget",
        "1",
        "--label",
        "cluster=test",
    ]);
    wait_listening(ep);
    // The text format as promtool's linter sees it (names, units, _total on counters).
    let text = eventually("SteadyItem in /metrics", || {
        let (_, body) = http_get(ep, "/metrics", None)?;
        Ok(body.contains("__main__.SteadyItem").then_some(body))
    });
    promtool_check_metrics(&text);
    let (head, om) = http_get(
        ep,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .expect("OpenMetrics scrape");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(
        om.ends_with("# EOF\n"),
        "{:.200}",
        &om[om.len().saturating_sub(200)..]
    );

    let _prom = start_prometheus(dir.path(), pp, ep);
    eventually("Prometheus up", || {
        Ok(http_get(pp, "/-/ready", None)
            .ok()
            .filter(|(h, _)| h.contains(" 200 "))
            .map(|_| ()))
    });
    // Prometheus asks for OpenMetrics first: `up` is 1 only if it parsed our exposition.
    eventually("the scrape succeeding", || {
        Ok(one(pp, "up{job=\"pymemspy\"}")?.filter(|v| *v == 1.0))
    });

    // A type's object count equals the target's truth (the steady worker holds exactly 1000).
    let steady_q =
        format!("pymemspy_type_objects{{pid=\"{steady}\",type=\"__main__.SteadyItem\"}}");
    let n = eventually("the steady worker's SteadyItem count", || {
        one(pp, &steady_q)
    });
    assert_eq!(n, 1000.0, "{steady_q}");
    // Labels: service from the command line, Python version, the tree's parent and roles.
    let series = query(pp, &steady_q).unwrap();
    let labels = &series[0].0;
    assert_eq!(labels["service"], "recycled_workers", "{labels}");
    assert_eq!(labels["python"], version.as_str(), "{labels}");
    assert_eq!(labels["role"], "worker", "{labels}");
    assert_eq!(labels["parent"], master.to_string().as_str(), "{labels}");
    assert_eq!(labels["cluster"], "test", "{labels}");
    let master_role = eventually("the master's series", || {
        let r = query(pp, &format!("pymemspy_up{{pid=\"{master}\"}}"))?;
        Ok(r.first().map(|(l, _)| l["role"].clone()))
    });
    assert_eq!(master_role, "parent");

    // deriv() of the leaker's bytes is positive, the steady worker's is not. Asked until
    // Prometheus holds enough samples for a 20 s window to mean something.
    let leak_q =
        format!("deriv(pymemspy_type_bytes{{pid=\"{leaker}\",type=\"__main__.LeakItem\"}}[20s])");
    let steady_d =
        format!("deriv(pymemspy_type_bytes{{pid=\"{steady}\",type=\"__main__.SteadyItem\"}}[20s])");
    let samples_q = format!(
        "count_over_time(pymemspy_type_bytes{{pid=\"{leaker}\",type=\"__main__.LeakItem\"}}[20s])"
    );
    eventually("10 samples of the leaker", || {
        Ok(one(pp, &samples_q)?.filter(|n| *n >= 10.0))
    });
    let rate = one(pp, &leak_q).unwrap().expect("deriv of the leaker");
    assert!(rate > 0.0, "{leak_q} = {rate}");
    let flat = one(pp, &steady_d)
        .unwrap()
        .expect("deriv of the steady worker");
    assert!(flat <= 0.0, "{steady_d} = {flat}");
    // The leak-suspect gauge (record's verdict over the exporter's history) names the leaker's
    // type and not the steady one's.
    eventually("LeakItem a leak suspect", || {
        Ok(one(
            pp,
            &format!("pymemspy_type_leak_suspect{{pid=\"{leaker}\",type=\"__main__.LeakItem\"}}"),
        )?
        .filter(|v| *v == 1.0))
    });
    let steady_suspect = one(
        pp,
        &format!("pymemspy_type_leak_suspect{{pid=\"{steady}\",type=\"__main__.SteadyItem\"}}"),
    )
    .unwrap();
    assert_eq!(steady_suspect, Some(0.0));

    // A worker recycled: its series go stale, its replacement's appear.
    eventually("the recycled worker's series", || {
        one(pp, &format!("pymemspy_up{{pid=\"{old}\"}}"))
    });
    // SAFETY: a signal to the target we started.
    unsafe { libc::kill(master as i32, libc::SIGUSR1) };
    let recycled_path = target.scratch().join("recycled.json");
    let recycled: Value = eventually("recycled.json", || {
        Ok(std::fs::read_to_string(&recycled_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok()))
    });
    assert_eq!(recycled["old"].as_i64(), Some(old), "{recycled}");
    let new = recycled["new"].as_i64().expect("new worker pid");
    let replaced = eventually("the replacement's RecycledItem count", || {
        one(
            pp,
            &format!("pymemspy_type_objects{{pid=\"{new}\",type=\"__main__.RecycledItem\"}}"),
        )
    });
    assert_eq!(replaced, 1000.0);
    eventually("the exited worker's series stale", || {
        Ok(query(pp, &format!("{{job=\"pymemspy\",pid=\"{old}\"}}"))?
            .is_empty()
            .then_some(()))
    });
    println!(
        "[{}] Prometheus: SteadyItem 1000 (truth 1000), deriv(LeakItem bytes) {rate:.0} B/s, \
         SteadyItem {flat}, worker {old} stale, {new} appeared",
        interp.label
    );
}

fn promtool_check_metrics(text: &str) {
    if !tool_available("promtool") {
        return common::skip("promtool not installed (apt-get install prometheus)");
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    let mut stdin = child.stdin.take().unwrap();
    let body = text.to_string();
    // Written from a thread: promtool may answer before reading all of a large exposition.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(body.as_bytes());
    });
    let out = child.wait_with_output().expect("promtool output");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn example_rules_check_and_pass_their_unit_tests() {
    if !tool_available("promtool") {
        return common::skip("promtool not installed (apt-get install prometheus)");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus");
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["test", "rules", "rules_test.yml"],
        &["check", "config", "prometheus.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Peak resident memory of a process (VmHWM), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The exporter's bound on a hostile target: 20 types + (other) exported, names cut, the
/// cut names that collide merged (never a duplicate series), every label value escaped (the
/// exposition parses), and the exporter's memory within what its budget allows.
#[test]
fn hostile_types_stay_within_the_exporter_bounds() {
    let Some(interp) = first_gil_interpreter() else {
        return common::skip("no GIL interpreter listed");
    };
    let target = Target::spawn(&interp, "hostile_types.py", &["100000"])
        .unwrap_or_else(|e| panic!("[{}] target: {e}", interp.label));
    let types = target.truth_u64("types");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let pid = target.pid_arg();
    let exp = exporter(&[
        "--listen",
        &listen,
        "--pid",
        &pid,
        "--interval",
        "1s",
        "--cpu-budget",
        "1",
    ]);
    wait_listening(port);
    // Two censuses: the second one proves the history stays bounded too.
    let body = eventually("two censuses", || {
        let (_, body) = http_get(port, "/metrics", None)?;
        let n = body
            .lines()
            .find_map(|l| l.strip_prefix("pymemspy_exporter_censuses_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Ok((n >= 2).then_some(body))
    });
    let type_lines: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("pymemspy_type_objects{"))
        .collect();
    assert_eq!(type_lines.len(), 21, "{} types in the target", types);
    // The huge names differ only after the cut: one series holding all their objects.
    let huge = target.truth_u64("huge_objects");
    let merged: Vec<&&str> = type_lines
        .iter()
        .filter(|l| l.contains("type=\"__main__.H\\\"\\\\\\n"))
        .collect();
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert!(
        merged[0].ends_with(&format!(" {huge}")),
        "{:.300}",
        merged[0]
    );
    for l in &type_lines {
        let name = l
            .split("type=\"")
            .nth(1)
            .and_then(|r| r.rsplit_once("\"} "));
        let name = name
            .map(|(n, _)| n)
            .unwrap_or_else(|| panic!("no type label: {l:.300}"));
        // 120 characters, each escaped to at most two, and the ellipsis.
        assert!(
            name.chars().count() <= 241,
            "{} characters: {name:.200}",
            name.len()
        );
    }
    assert!(
        body.contains("pymemspy_exporter_type_names_truncated_total ")
            && !body.contains("pymemspy_exporter_type_names_truncated_total 0\n"),
        "no truncated name counted"
    );
    promtool_check_metrics(&body);
    let peak = peak_rss(exp.pid());
    // The view's budget (--cache-mib, 64 MiB), the census's type table (all 100,000 types, about
    // 1 KiB each: the session's, not the exporter's figures, which stay at 21 types) and the
    // scan's lists; measured 138 MiB on 3.10.
    assert!(peak < 256 << 20, "exporter peak RSS {} MiB", peak >> 20);
    println!(
        "[{}] {types} types: 21 type series, exporter peak RSS {} MiB",
        interp.label,
        peak >> 20
    );
}
