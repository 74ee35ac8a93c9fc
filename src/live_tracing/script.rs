//! The Python code pymemspy has the target run to start its tracemalloc, and the watchdog that
//! stops it again. It is the only code pymemspy ever runs in a target, so it is small, defines
//! no name anywhere in the program (it runs in a dict of its own), imports only built-in modules
//! (`_tracemalloc`, `_thread`, `posix`, `time`: no file is read, no package code runs), and
//! never raises.
//!
//! Why a watchdog in the target rather than a second injection to stop: tracing must end even
//! when pymemspy cannot come back (killed, its machine's session gone, a container's network
//! namespace torn down). The watchdog keeps tracing on only while a lease file stays fresh:
//! pymemspy touches it every `LEASE_REFRESH`; when it is removed (the recording ended) or older
//! than the expiry (pymemspy died), the watchdog calls `tracemalloc.stop()`, which frees every
//! trace, and ends. A thread of `_thread`, not `threading`: importing `threading` from a thread
//! other than the main one would make that thread `threading.main_thread()` for the program.
//!
//! The handshake is through files in the staging directory (see `staging`): `claim` (created
//! exclusively, so that one thread runs the body when several were asked to), `status` (what
//! happened, one word and details), `lease`.

use std::time::Duration;

/// How often pymemspy refreshes the lease.
pub const LEASE_REFRESH: Duration = Duration::from_millis(500);
/// A lease older than this means pymemspy is gone: the target stops tracing by itself.
pub const LEASE_EXPIRY: Duration = Duration::from_secs(5);
/// How often the watchdog looks at the lease (the delay between the lease's removal and the end
/// of tracing).
pub const WATCH_PERIOD: Duration = Duration::from_millis(100);

/// What the script writes to `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It started tracing with this many frames.
    Started { frames: u32 },
    /// The program was tracing already: left as it was (no watchdog).
    AlreadyTracing,
    /// The watchdog stopped tracing ("lease removed" or "lease expired").
    Stopped { why: String },
    /// Something failed in the target (the exception's type and message).
    Failed { why: String },
}

impl Status {
    /// The status file's text; None while it is still being written (no newline yet).
    pub fn parse(text: &str) -> Option<Status> {
        let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
        if !text.ends_with('\n') {
            return None;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        Some(match word {
            "started" => Status::Started {
                frames: rest.trim().parse().unwrap_or(0),
            },
            "already" => Status::AlreadyTracing,
            "stopped" => Status::Stopped {
                why: rest.trim().to_string(),
            },
            _ => Status::Failed {
                why: rest.trim().to_string(),
            },
        })
    }
}

/// Python string literal of a path (the staging paths are ours: ASCII, no quotes; escaped
/// anyway).
fn literal(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' | '\'' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('\'');
    out
}

/// The script, for a staging directory `dir` as the target sees it. Long: it is the Python script
/// itself, one string; its lines are the target's code, not Rust's.
pub fn source(dir: &str, frames: u32) -> String {
    format!(
        r#"# pymemspy: start tracemalloc ({frames} frames) while pymemspy records; stop when its lease ends.
def _pymemspy_tracing(d, frames, expiry, period):
    # Built-in modules only: importing them reads no file and runs no package's code.
    import posix as os, time, _tracemalloc as tracemalloc, _thread
    join = lambda n: d + '/' + n
    def status(text):
        try:
            fd = os.open(join('status'), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
            try:
                os.write(fd, (text + '\n').encode())
            finally:
                os.close(fd)
        except OSError:
            pass
    def clean_up():
        for n in ('lease', 'status', 'claim', 'script.py'):
            try:
                os.unlink(join(n))
            except OSError:
                pass
        try:
            os.rmdir(d)
        except OSError:
            pass
    try:
        os.close(os.open(join('claim'), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except OSError:
        return  # another thread of this program runs it, or the recording is over
    try:
        # A request that ran late (pymemspy died before taking it back): its lease has
        # expired, so nothing starts, and nothing of it stays behind.
        if time.time() - os.stat(join('lease')).st_mtime > expiry:
            clean_up()
            return
    except OSError:
        return  # the lease is gone: the recording is over
    try:
        if tracemalloc.is_tracing():
            status('already')
            return
        tracemalloc.start(frames)
    except BaseException as e:
        status('failed %s: %s' % (type(e).__name__, str(e)[:200]))
        return
    state = {{'pid': os.getpid()}}
    def child_after_fork():
        # A worker forked while tracing has no watchdog: it must not trace forever.
        if state.get('pid') is not None and tracemalloc.is_tracing():
            tracemalloc.stop()
    try:
        os.register_at_fork(after_in_child=child_after_fork)
    except Exception:
        pass
    def watch():
        why = 'lease removed'
        while True:
            time.sleep(period)
            if not tracemalloc.is_tracing():
                why = 'tracing stopped by the program'
                break
            try:
                age = time.time() - os.stat(join('lease')).st_mtime
            except OSError:
                break
            if age > expiry:
                why = 'lease expired (pymemspy gone)'
                break
        try:
            if tracemalloc.is_tracing():
                tracemalloc.stop()
        except BaseException:
            pass
        state['pid'] = None
        status('stopped ' + why)
        if why.startswith('lease expired'):
            # pymemspy is gone and cannot clean up: leave nothing behind.
            clean_up()
            return
        # pymemspy removes the directory once it has read the status; if it dies first,
        # nothing else would: wait for it while its lease is kept, and a lease's length more.
        waited = 0.0
        while waited <= expiry:
            time.sleep(period)
            waited += period
            try:
                os.stat(d)
            except OSError:
                return
            try:
                if time.time() - os.stat(join('lease')).st_mtime <= expiry:
                    waited = 0.0
            except OSError:
                pass
        clean_up()
    try:
        _thread.start_new_thread(watch, ())
    except BaseException as e:
        tracemalloc.stop()
        status('failed %s: %s' % (type(e).__name__, str(e)[:200]))
        return
    status('started %d' % frames)

_pymemspy_tracing({dir}, {frames}, {expiry}, {period})
"#,
        dir = literal(dir),
        frames = frames,
        expiry = LEASE_EXPIRY.as_secs_f64(),
        period = WATCH_PERIOD.as_secs_f64(),
    )
}

/// What the ptrace path has the thread run (`PyRun_SimpleString`): read the script file and run
/// it in a dict of its own, so nothing is bound in `__main__`.
pub fn loader(script_path: &str) -> String {
    format!(
        "exec(compile(__import__('_io').open({p}, 'rb').read(), {p}, 'exec'), {{'__name__': '__pymemspy__'}})",
        p = literal(script_path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            Status::parse("started 16\n"),
            Some(Status::Started { frames: 16 })
        );
        assert_eq!(Status::parse("started 16"), None);
        assert_eq!(
            Status::parse("started 16\nstopped lease removed\n"),
            Some(Status::Stopped {
                why: "lease removed".into()
            })
        );
        assert_eq!(Status::parse("already\n"), Some(Status::AlreadyTracing));
    }

    #[test]
    fn paths_are_quoted() {
        assert_eq!(literal("/tmp/a'b"), "'/tmp/a\\'b'");
        assert!(source("/tmp/x", 16).contains("_pymemspy_tracing('/tmp/x', 16, 5, 0.1)"));
    }
}
