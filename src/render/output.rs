//! Writing result files safely: atomically (temp file + rename, so a reader never sees half a
//! file and a pre-planted symlink is replaced, not followed), and owned by the invoking user
//! when run under sudo.

use anyhow::Context;
use std::io::Write;
use std::path::Path;

pub fn write(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
        std::io::stdout().write_all(bytes)?;
        return Ok(());
    };
    write_file(path, bytes, true)
}

/// Write `path` atomically; `for_sudo_user`: hand it to the user who ran sudo (results), or
/// leave it to whoever runs the tool (the layout cache: root's cache must not be the user's to
/// edit).
pub fn write_file(path: &Path, bytes: &[u8], for_sudo_user: bool) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
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
