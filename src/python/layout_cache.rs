//! The layout cache: what a build's DWARF yielded, kept per user so that the next attach to the
//! same build skips reading (often inflating) tens of megabytes of debug info.
//!
//! One small JSON file per build under `$XDG_CACHE_HOME/pymemspy` (else `~/.cache/pymemspy`),
//! named after the build-id of the binary (or, without one, a hash of the debug info file's path,
//! size and modification time). It holds the derived struct offsets and the symbols taken from a
//! separate debug file, never the DWARF itself. An entry written by another version of the tool
//! or schema, for another key, or that does not parse is ignored and rewritten. Nothing here is
//! ever fatal: without a writable cache directory, the DWARF is simply read every time.
//! `PYMEMSPY_NO_CACHE=1` turns it off.

use super::binary::PythonBinary;
use super::dwarf::Offsets;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bump when what an entry holds, or how it is derived, changes (new struct members read,
/// another meaning of a key): entries of other schemas are ignored.
const SCHEMA: u32 = 1;
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
/// An entry is a few kilobytes; anything much larger is not ours.
const MAX_ENTRY_BYTES: u64 = 1 << 20;
/// Struct offsets beyond this are not offsets (a damaged or foreign file).
const MAX_OFFSET: u64 = 1 << 32;

/// Whether the cache is on: off under `PYMEMSPY_NO_CACHE` (any value but "0" or empty), and
/// always off in the crate's own unit tests, which must not depend on a user's cache.
pub fn enabled_by_env() -> bool {
    if cfg!(test) {
        return false;
    }
    std::env::var_os("PYMEMSPY_NO_CACHE").is_none_or(|v| v.is_empty() || v == "0")
}

/// What a build's DWARF yielded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    schema: u32,
    tool: String,
    key: String,
    /// The struct list read depends on it (see `dwarf::wanted`).
    pub free_threaded: bool,
    pub offsets: Offsets,
    /// Link-time values of the wanted symbols a separate debug file defines (stripped builds).
    pub symbols: BTreeMap<String, u64>,
}

/// The cache file of one build.
#[derive(Debug, Clone)]
pub struct Slot {
    path: PathBuf,
    key: String,
}

impl Slot {
    /// The slot for the build whose debug info is in `debug_file`; None without a cache
    /// directory or when the file cannot be identified.
    pub fn new(binary: &PythonBinary, debug_file: &Path) -> Option<Slot> {
        Slot::in_dir(&cache_dir()?, binary.build_id.as_deref(), debug_file)
    }

    fn in_dir(dir: &Path, build_id: Option<&[u8]>, debug_file: &Path) -> Option<Slot> {
        let (key, name) = match build_id.filter(|id| !id.is_empty()) {
            // The debug file was found by this id (or is the binary itself): the id names
            // both, wherever they are installed.
            Some(id) => {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                (format!("build-id {hex}"), hex)
            }
            None => {
                let meta = std::fs::metadata(debug_file).ok()?;
                let mtime = meta
                    .modified()
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?;
                let key = format!(
                    "file {} size {} mtime {}.{:09}",
                    debug_file.display(),
                    meta.len(),
                    mtime.as_secs(),
                    mtime.subsec_nanos()
                );
                // Only names the file: the key inside is what is checked.
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut h);
                (key, format!("file-{:016x}", h.finish()))
            }
        };
        Some(Slot {
            path: dir.join(format!("layout-{name}.json")),
            key,
        })
    }

    /// The entry, when there is a valid one for this key, tool version and schema.
    pub fn load(&self) -> Option<Entry> {
        let outcome = self.read();
        match &outcome {
            Ok(_) => log::debug!("layout cache hit: {}", self.path.display()),
            Err(why) => log::debug!("layout cache miss ({why}): {}", self.path.display()),
        }
        outcome.ok()
    }

    fn read(&self) -> anyhow::Result<Entry> {
        // Under sudo, $HOME may still be the invoking user's: only a file and directory that
        // belong to the tool's own user and that nobody else can write are trusted, so another
        // user cannot feed root made-up offsets.
        if let Some(dir) = self.path.parent() {
            trusted(dir)?;
        }
        trusted(&self.path)?;
        let file = std::fs::File::open(&self.path)?;
        let mut bytes = Vec::new();
        file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            anyhow::bail!("too large");
        }
        let entry: Entry = serde_json::from_slice(&bytes)?;
        if entry.schema != SCHEMA || entry.tool != TOOL_VERSION {
            anyhow::bail!("written by {} schema {}", entry.tool, entry.schema);
        }
        if entry.key != self.key {
            anyhow::bail!("for another file ({})", entry.key);
        }
        if entry.offsets.values().any(|&v| v >= MAX_OFFSET) {
            anyhow::bail!("offset out of range");
        }
        Ok(entry)
    }

    /// Write the entry (atomically: a reader sees the old file or the new one). Failures are
    /// logged and otherwise ignored.
    pub fn store(&self, free_threaded: bool, offsets: &Offsets, symbols: &BTreeMap<String, u64>) {
        let entry = Entry {
            schema: SCHEMA,
            tool: TOOL_VERSION.to_string(),
            key: self.key.clone(),
            free_threaded,
            offsets: offsets.clone(),
            symbols: symbols.clone(),
        };
        let written = (|| -> anyhow::Result<()> {
            if let Some(dir) = self.path.parent() {
                use std::os::unix::fs::DirBuilderExt;
                // Private: entries are trusted only in a directory nobody else can write.
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            let mut json = serde_json::to_vec_pretty(&entry)?;
            json.push(b'\n');
            crate::atomic_file::write(&self.path, &json, false)
        })();
        match written {
            Ok(()) => log::debug!("layout cache written: {}", self.path.display()),
            Err(e) => log::debug!("layout cache not written ({e:#}): {}", self.path.display()),
        }
    }
}

/// Owned by the tool's effective user and not writable by group or others (symlinks are not
/// followed: a planted link is refused like a foreign file).
fn trusted(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        anyhow::bail!("a symbolic link");
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        anyhow::bail!("owned by uid {}, not ours", meta.uid());
    }
    if meta.mode() & 0o022 != 0 {
        anyhow::bail!("writable by group or others");
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/pymemspy`, else `$HOME/.cache/pymemspy` (relative paths are ignored, as
/// the XDG specification asks).
fn cache_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("pymemspy"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Offsets, BTreeMap<String, u64>) {
        let offsets: Offsets = [("_is.next".to_string(), 8), ("_is.__size__".into(), 4096)]
            .into_iter()
            .collect();
        let symbols = [("arenas".to_string(), 0x1234)].into_iter().collect();
        (offsets, symbols)
    }

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::in_dir(dir.path(), Some(&[0xab, 0xcd, 0x01]), Path::new("/x")).unwrap();
        assert!(slot.path.ends_with("layout-abcd01.json"));
        assert_eq!(slot.load(), None);
        let (offsets, symbols) = sample();
        slot.store(false, &offsets, &symbols);
        let e = slot.load().expect("written entry is read back");
        assert_eq!(
            (e.offsets, e.symbols, e.free_threaded),
            (offsets.clone(), symbols, false)
        );

        // Another key under the same file name (a hash collision, a copied file): ignored.
        let other = Slot {
            key: "build-id ffff".into(),
            ..slot.clone()
        };
        assert_eq!(other.load(), None);

        // Damaged files are ignored, then rewritten.
        for junk in [&b"{\"schema\": 1, "[..], b"", b"\xff\xfe", b"[]"] {
            std::fs::write(&slot.path, junk).unwrap();
            assert_eq!(slot.load(), None);
        }
        let text = std::fs::read_to_string(dir.path().join("layout-abcd01.json")).unwrap();
        assert_eq!(text, "[]");
        slot.store(false, &offsets, &BTreeMap::new());
        assert!(slot.load().is_some());

        // Another tool version: ignored.
        let mut raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&slot.path).unwrap()).unwrap();
        raw["tool"] = "0.0.0-other".into();
        std::fs::write(&slot.path, raw.to_string()).unwrap();
        assert_eq!(slot.load(), None);
    }

    #[test]
    fn entries_others_could_write_are_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("pymemspy");
        let slot = Slot::in_dir(&dir, Some(&[0x12]), Path::new("/x")).unwrap();
        let (offsets, symbols) = sample();
        slot.store(false, &offsets, &symbols);
        assert!(slot.load().is_some());
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
        mode(&slot.path, 0o666).unwrap();
        assert_eq!(slot.load(), None, "world-writable file");
        mode(&slot.path, 0o644).unwrap();
        mode(&dir, 0o777).unwrap();
        assert_eq!(slot.load(), None, "world-writable directory");
        mode(&dir, 0o700).unwrap();
        assert!(slot.load().is_some());
        // A planted symbolic link is refused, even to a good entry.
        let real = dir.join("real.json");
        std::fs::rename(&slot.path, &real).unwrap();
        std::os::unix::fs::symlink(&real, &slot.path).unwrap();
        assert_eq!(slot.load(), None, "symbolic link");
    }

    #[test]
    fn without_build_id_the_file_is_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let debug = dir.path().join("python.debug");
        std::fs::write(&debug, b"one").unwrap();
        let a = Slot::in_dir(dir.path(), None, &debug).unwrap();
        assert!(a.key.contains("size 3"), "{}", a.key);
        std::fs::write(&debug, b"other").unwrap();
        let b = Slot::in_dir(dir.path(), None, &debug).unwrap();
        assert_ne!(a.key, b.key);
        assert_ne!(a.path, b.path);
        assert!(Slot::in_dir(dir.path(), None, &dir.path().join("missing")).is_none());
    }

    #[test]
    fn unwritable_directory_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"").unwrap();
        let slot = Slot::in_dir(&file.join("pymemspy"), Some(&[1, 2]), Path::new("/x")).unwrap();
        let (offsets, symbols) = sample();
        slot.store(false, &offsets, &symbols);
        assert_eq!(slot.load(), None);
    }
}
