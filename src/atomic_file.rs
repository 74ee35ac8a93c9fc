//! Writing files safely, for every layer (results, the layout cache): atomically (temp file +
//! rename, so a reader never sees half a file and a pre-planted symlink is replaced, not
//! followed), and owned by the invoking user when run under sudo. Devices and pipes
//! (`-o /dev/null`, `/dev/stdout`, a FIFO) are written into, never replaced. It imports nothing
//! of the pipeline, so that any stage may use it.

use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// Write `path` atomically; `for_sudo_user`: hand it to the user who ran sudo (results), or
/// leave it to whoever runs the tool (the layout cache: root's cache must not be the user's to
/// edit).
pub fn write(path: &Path, bytes: &[u8], for_sudo_user: bool) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Some(special) = special_destination(path, dir)? {
        // /dev/null, /dev/stdout, a FIFO: written into. A rename would replace the device
        // node itself with a plain file (as root, /dev/null for the whole machine).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&special)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(());
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".pymemspy-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all().ok();
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
    if for_sudo_user {
        give_to_sudo_user(tmp.path());
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The device or pipe `path` names, if it names one: directly, or through a symbolic link in
/// a directory only its owner can write (`/dev/stdout`; a link planted in a shared directory
/// such as /tmp is never followed, but replaced like any other file).
fn special_destination(path: &Path, dir: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(None);
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        anyhow::bail!("{} is a directory: name a file to write", path.display());
    }
    if kind.is_file() {
        return Ok(None);
    }
    if !kind.is_symlink() {
        return Ok(Some(path.to_path_buf()));
    }
    let private_dir = std::fs::metadata(dir).is_ok_and(|d| {
        let owner = d.uid();
        (owner == 0 || owner == nix::unistd::geteuid().as_raw()) && d.mode() & 0o022 == 0
    });
    // Followed to the end (/dev/stdout → /proc/self/fd/1 → a pipe or a terminal).
    let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
    Ok((private_dir && special).then(|| path.to_path_buf()))
}

/// Under sudo, hand the file to the user who ran sudo rather than leaving it owned by root.
fn give_to_sudo_user(path: &Path) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let id = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) {
        let _ = nix::unistd::chown(
            path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_written_into_never_replaced() {
        write(Path::new("/dev/null"), b"x", false).expect("write /dev/null");
        let meta = std::fs::symlink_metadata("/dev/null").expect("/dev/null");
        assert!(
            !meta.file_type().is_file(),
            "/dev/null was replaced by a file"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), b"x", false).is_err(), "a directory");
        // A link to a device in a directory others can write (like /tmp) is replaced, never
        // followed: it may have been planted.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let link = shared.join("out");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        write(&link, b"data", false).unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), b"data");
        assert!(std::fs::symlink_metadata("/dev/null").is_ok_and(|m| !m.is_file()));
        // In a private directory, the same link is followed into the device.
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        let link = private.join("out");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        write(&link, b"data", false).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
