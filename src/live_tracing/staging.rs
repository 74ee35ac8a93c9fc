//! The files the target reads while pymemspy turns its tracing on: a directory made for one
//! recording, inside the target's own mount namespace (`/proc/PID/root/tmp/…`: a container
//! sees it at `/tmp/…`), owned by the target's user with mode 0700, so that only that user and
//! root can write there; every file in it created exclusively (`O_EXCL | O_NOFOLLOW`) by
//! pymemspy. Removed when the recording ends; when pymemspy dies instead, the target's
//! watchdog removes it once the lease has expired.

use anyhow::{bail, Context, Result};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::script::Status;

/// Where in the target's file system the directory may go, in order of preference.
const BASES: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

pub struct Staging {
    /// The directory as pymemspy opens it (through /proc/PID/root).
    host_dir: PathBuf,
    /// The same directory as the target names it.
    target_dir: String,
    /// The lease, kept open so that refreshing it is one futimens.
    lease: Option<Arc<File>>,
}

/// (effective uid, effective gid) of a process: whose files the target can read.
fn owner(pid: i32) -> Result<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u32> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(2)?.parse().ok()
    };
    match (field("Uid:"), field("Gid:")) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => bail!("cannot read process {pid}'s user from /proc/{pid}/status"),
    }
}

/// A name no one can have guessed before we made it.
fn unique_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("pymemspy-{}-{:016x}", std::process::id(), h.finish())
}

/// Whether a traceback's file is the script pymemspy staged for a target (`BASE/pymemspy-PID-
/// HEX/script.py`): what that code allocates (its watchdog's `os.stat` results, its floats) is
/// pymemspy's, not the program's, and is left out of what tracemalloc's tables are read as.
pub fn is_staged_script(file: &str) -> bool {
    let Some(dir) = file.strip_suffix("/script.py") else {
        return false;
    };
    let Some((base, name)) = dir.rsplit_once('/') else {
        return false;
    };
    BASES.contains(&base)
        && name
            .strip_prefix("pymemspy-")
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(pid, hex)| {
                pid.bytes().all(|b| b.is_ascii_digit())
                    && hex.bytes().all(|b| b.is_ascii_hexdigit())
            })
}

/// Remove what a pymemspy killed before the target ran its script left: directories named
/// for a pymemspy process that no longer runs, owned by the target's user, 0700, not links.
/// (Once the script runs, its watchdog removes its own files when the lease expires.)
fn sweep(base: &Path, uid: u32) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten().take(10_000) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(owner_pid) = name
            .strip_prefix("pymemspy-")
            .and_then(|r| r.split_once('-'))
            .and_then(|(p, _)| p.parse::<u32>().ok())
        else {
            continue;
        };
        if owner_pid == std::process::id() || Path::new(&format!("/proc/{owner_pid}")).exists() {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o777 == 0o700 {
            // remove_dir_all does not follow symlinks inside the directory.
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Staging {
    /// Make the directory and its files for a target: the script (`script.py`), an empty
    /// `status` the target appends to, and the `lease`.
    pub fn create(pid: i32, script: impl Fn(&str) -> String) -> Result<Staging> {
        let (uid, gid) = owner(pid)?;
        let mut last_err = None;
        for base in BASES {
            let host_base = PathBuf::from(format!("/proc/{pid}/root{base}"));
            if !host_base.is_dir() {
                continue;
            }
            sweep(&host_base, uid);
            let name = unique_name();
            let host_dir = host_base.join(&name);
            // mkdir does not follow a symlink in its last component and fails when the name
            // exists: the directory is ours, new.
            match DirBuilder::new().mode(0o700).create(&host_dir) {
                Ok(()) => {}
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            }
            let mut staging = Staging {
                host_dir,
                target_dir: format!("{base}/{name}"),
                lease: None,
            };
            staging.fill(uid, gid, &script)?;
            return Ok(staging);
        }
        match last_err {
            Some(e) => bail!(
                "cannot make a directory for the target's tracing script under /tmp, /var/tmp or \
                 /dev/shm of process {pid}'s file system ({e})"
            ),
            None => bail!(
                "process {pid} has no /tmp, /var/tmp or /dev/shm to hold the tracing script: \
                 start it with PYTHONTRACEMALLOC=16 instead"
            ),
        }
    }

    fn fill(&mut self, uid: u32, gid: u32, script: &impl Fn(&str) -> String) -> Result<()> {
        let chown = |p: &Path| -> Result<()> {
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .with_context(|| format!("cannot give {} to the target's user", p.display()))?;
            }
            Ok(())
        };
        let create = |name: &str, text: &str| -> Result<File> {
            let path = self.host_dir.join(name);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(text.as_bytes())?;
            chown(&path)?;
            Ok(f)
        };
        create("script.py", &script(&self.target_dir))?;
        create("status", "")?;
        self.lease = Some(Arc::new(create("lease", "")?));
        chown(&self.host_dir)
    }

    /// The script's path as the target names it.
    pub fn script_path(&self) -> String {
        format!("{}/script.py", self.target_dir)
    }

    /// A handle that refreshes the lease from another thread.
    pub fn lease_handle(&self) -> Lease {
        Lease(self.lease.clone())
    }

    /// End the lease: the watchdog stops tracing within its period.
    pub fn end_lease(&mut self) {
        self.lease = None;
        let _ = std::fs::remove_file(self.host_dir.join("lease"));
    }

    /// The last thing the script said, if it said anything yet.
    pub fn status(&self) -> Option<Status> {
        let mut text = String::new();
        File::open(self.host_dir.join("status"))
            .ok()?
            .take(64 * 1024)
            .read_to_string(&mut text)
            .ok()?;
        Status::parse(&text)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.end_lease();
        // remove_dir_all does not follow symlinks inside the directory.
        let _ = std::fs::remove_dir_all(&self.host_dir);
    }
}

/// The lease file, refreshed while pymemspy records.
pub struct Lease(Option<Arc<File>>);

impl Lease {
    /// Tell the target's watchdog that pymemspy is still here.
    pub fn refresh(&self) {
        if let Some(f) = &self.0 {
            let _ = nix::sys::stat::futimens(
                f.as_ref(),
                &nix::sys::time::TimeSpec::UTIME_NOW,
                &nix::sys::time::TimeSpec::UTIME_NOW,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_staged_script;

    #[test]
    fn only_pymemspys_staged_script_is_its_own() {
        assert!(is_staged_script(
            "/tmp/pymemspy-4242-00ff12ab34cd56ef/script.py"
        ));
        assert!(is_staged_script("/dev/shm/pymemspy-7-0a/script.py"));
        assert!(!is_staged_script("/srv/app/script.py"));
        assert!(!is_staged_script("/tmp/pymemspy-4242-zz/script.py"));
        assert!(!is_staged_script("/home/me/pymemspy-1-ab/script.py"));
        assert!(!is_staged_script("/tmp/pymemspy-4242-00ff/other.py"));
    }
}
