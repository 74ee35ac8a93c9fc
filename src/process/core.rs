//! A core file as the target: `snapshot --core core.N` reads a `gcore` (or kernel) dump with the
//! same walkers as a live process.
//!
//! What the dump holds is read from its PT_LOAD segments. Dumpers leave out file-backed memory
//! that the file itself still has (text, read-only data: gcore and the default
//! coredump_filter both do), so the NT_FILE note, which lists every mapped file with its file
//! offset, lets us read those bytes from the files themselves. The mappings the pipeline sees
//! are the union of both, with the files' paths, so `binary::locate` finds libpython and
//! computes its load bias exactly as on a live process.

use super::memory::{Fault, FaultKind, Memory};
use super::target::Mapping;
use goblin::elf::{program_header::PT_LOAD, Elf};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The Linux note types we read (elf.h).
const NT_PRSTATUS: u32 = 1;
const NT_AUXV: u32 = 6;
const NT_FILE: u32 = 0x4649_4c45;
/// auxv key of the program headers' address: it lies in the main executable's first mapping.
const AT_PHDR: u64 = 3;
/// `pr_pid` in x86_64's `struct elf_prstatus` (siginfo 12, cursig 2+2, sigpend 8, sighold 8).
const PRSTATUS_PID_OFFSET: usize = 32;
/// Bounds on what a hostile core may ask of us.
const MAX_FILES: u64 = 1 << 16;
const MAX_SEGMENTS: usize = 1 << 20;

/// Bytes of one PT_LOAD segment present in the core file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u64,
    /// End of the bytes the core holds (p_vaddr + p_filesz).
    end: u64,
    file_offset: u64,
}

/// One NT_FILE entry: `[start, end)` maps `path` from `offset`.
#[derive(Debug, Clone)]
struct FileRegion {
    start: u64,
    end: u64,
    offset: u64,
    path: String,
}

pub struct CoreMemory {
    core: memmap2::Mmap,
    segments: Vec<Segment>,
    files: Vec<FileRegion>,
    /// Path in the core → where we open it (`--executable`, or the same path).
    rename: HashMap<String, PathBuf>,
    /// Mapped files opened so far; None when one cannot be opened (its bytes are then unmapped).
    opened: Mutex<HashMap<String, Option<memmap2::Mmap>>>,
}

/// What a core says about the process it was taken from.
pub struct CoreProcess {
    pub pid: i32,
    /// The main executable as the process saw it (from AT_PHDR and NT_FILE), if known.
    pub executable: Option<String>,
    pub memory: CoreMemory,
    pub maps: Vec<Mapping>,
}

impl CoreProcess {
    /// Open `core`; `executable` replaces the main executable's recorded path (a core copied to
    /// another machine, or a binary moved since). Long: the core's parts in the order they are read
    /// (ELF header, load segments, notes, the executable's path), each a few lines over the one
    /// mapped file.
    pub fn open(core: &Path, executable: Option<&Path>) -> anyhow::Result<CoreProcess> {
        let file = std::fs::File::open(core)
            .map_err(|e| anyhow::anyhow!("cannot open core file {}: {e}", core.display()))?;
        // SAFETY: a read-only private map of a regular file; a core is not modified under us.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let elf = Elf::parse(&map)
            .map_err(|e| anyhow::anyhow!("{} is not an ELF core file: {e}", core.display()))?;
        if elf.header.e_type != goblin::elf::header::ET_CORE {
            anyhow::bail!(
                "{} is an ELF file but not a core dump (make one with `gcore -o PREFIX PID`)",
                core.display()
            );
        }
        let mut segments = Vec::new();
        let mut spans = Vec::new();
        for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
            if segments.len() >= MAX_SEGMENTS {
                break;
            }
            let Some(mem_end) = ph.p_vaddr.checked_add(ph.p_memsz) else {
                continue;
            };
            let in_file = ph
                .p_offset
                .checked_add(ph.p_filesz)
                .is_some_and(|e| e <= map.len() as u64);
            if ph.p_filesz > 0 && in_file {
                segments.push(Segment {
                    start: ph.p_vaddr,
                    end: ph.p_vaddr + ph.p_filesz.min(ph.p_memsz),
                    file_offset: ph.p_offset,
                });
            }
            spans.push((
                ph.p_vaddr,
                mem_end,
                ph.p_flags & goblin::elf::program_header::PF_R != 0,
            ));
        }
        segments.sort_by_key(|s| s.start);
        let mut pid = 0;
        let mut phdr = None;
        let mut files = Vec::new();
        if let Some(notes) = elf.iter_note_headers(&map) {
            for note in notes.flatten() {
                match note.n_type {
                    NT_PRSTATUS if pid == 0 => {
                        pid = le_u32(note.desc, PRSTATUS_PID_OFFSET).unwrap_or(0) as i32;
                    }
                    NT_AUXV => phdr = auxv_value(note.desc, AT_PHDR),
                    NT_FILE => files = parse_nt_file(note.desc),
                    _ => {}
                }
            }
        }
        files.sort_by_key(|f| f.start);
        let exe_path = phdr.and_then(|a| {
            files
                .iter()
                .find(|f| f.start <= a && a < f.end)
                .map(|f| f.path.clone())
        });
        let mut rename = HashMap::new();
        if let (Some(given), Some(recorded)) = (executable, &exe_path) {
            rename.insert(recorded.clone(), given.to_path_buf());
        }
        let memory = CoreMemory {
            core: map,
            segments,
            files,
            rename,
            opened: Mutex::new(HashMap::new()),
        };
        let maps = memory.mappings(&spans);
        Ok(CoreProcess {
            pid,
            executable: exe_path,
            memory,
            maps,
        })
    }
}

impl CoreMemory {
    /// Where a path recorded in the core is opened here.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.rename
            .get(path)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(path))
    }

    /// The process's mappings: every PT_LOAD span (named after the file mapped there, if any),
    /// plus mapped files the dump left out entirely (readable when the file can be opened).
    fn mappings(&self, spans: &[(u64, u64, bool)]) -> Vec<Mapping> {
        let mut maps: Vec<Mapping> = Vec::new();
        for &(start, end, readable) in spans {
            let file = self
                .files
                .iter()
                .find(|f| f.start <= start && start < f.end);
            maps.push(Mapping {
                start,
                end,
                offset: file.map_or(0, |f| f.offset + (start - f.start)),
                readable,
                path: file.map(|f| f.path.clone()),
            });
        }
        for f in &self.files {
            let covered = spans.iter().any(|&(s, e, _)| s < f.end && f.start < e);
            if !covered {
                maps.push(Mapping {
                    start: f.start,
                    end: f.end,
                    offset: f.offset,
                    readable: self.host_path(&f.path).is_file(),
                    path: Some(f.path.clone()),
                });
            }
        }
        maps.sort_by_key(|m| m.start);
        maps
    }

    /// Copy what lies at `addr` into `buf` from one source; returns the bytes copied (0: none).
    fn read_piece(&self, addr: u64, buf: &mut [u8]) -> usize {
        let i = self.segments.partition_point(|s| s.start <= addr);
        if let Some(s) = i.checked_sub(1).map(|i| self.segments[i]) {
            if addr < s.end {
                let n = ((s.end - addr) as usize).min(buf.len());
                let off = (s.file_offset + (addr - s.start)) as usize;
                if let Some(src) = self.core.get(off..off + n) {
                    buf[..n].copy_from_slice(src);
                    return n;
                }
                return 0;
            }
        }
        let Some(f) = self.files.iter().find(|f| f.start <= addr && addr < f.end) else {
            return 0;
        };
        // Stop at the next dumped segment: it holds the newer bytes (a written private page).
        let next_segment = self.segments.get(i).map_or(u64::MAX, |s| s.start);
        let limit = f.end.min(next_segment);
        let n = ((limit - addr) as usize).min(buf.len());
        let Ok(mut opened) = self.opened.lock() else {
            return 0;
        };
        let map = opened.entry(f.path.clone()).or_insert_with(|| {
            let file = std::fs::File::open(self.host_path(&f.path)).ok()?;
            // SAFETY: read-only private map of a mapped library or executable.
            unsafe { memmap2::Mmap::map(&file).ok() }
        });
        let Some(map) = map else { return 0 };
        let Some(off) = f.offset.checked_add(addr - f.start) else {
            return 0;
        };
        let off = off as usize;
        match map.get(off..off.saturating_add(n)) {
            Some(src) => {
                buf[..n].copy_from_slice(src);
                n
            }
            None => 0,
        }
    }
}

impl Memory for CoreMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let fault = Fault {
            addr,
            len: buf.len(),
            kind: FaultKind::Unmapped,
        };
        let mut done = 0;
        while done < buf.len() {
            let cur = addr.checked_add(done as u64).ok_or(fault)?;
            let n = self.read_piece(cur, &mut buf[done..]);
            if n == 0 {
                return Err(fault);
            }
            done += n;
        }
        Ok(())
    }
}

fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// The value of `key` in an auxiliary vector (pairs of u64, ended by AT_NULL).
fn auxv_value(desc: &[u8], key: u64) -> Option<u64> {
    desc.chunks_exact(16)
        .map(|p| (le_u64(p, 0).unwrap_or(0), le_u64(p, 8).unwrap_or(0)))
        .take_while(|&(k, _)| k != 0)
        .find(|&(k, _)| k == key)
        .map(|(_, v)| v)
}

/// NT_FILE: count, page size, `count` × (start, end, offset in pages), then `count` paths.
fn parse_nt_file(desc: &[u8]) -> Vec<FileRegion> {
    let (Some(count), Some(page)) = (le_u64(desc, 0), le_u64(desc, 8)) else {
        return Vec::new();
    };
    if count > MAX_FILES {
        return Vec::new();
    }
    let count = count as usize;
    let names_at = 16 + count * 24;
    let mut names = desc.get(names_at..).unwrap_or(&[]).split(|&b| b == 0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = 16 + i * 24;
        let (Some(start), Some(end), Some(pages)) = (
            le_u64(desc, at),
            le_u64(desc, at + 8),
            le_u64(desc, at + 16),
        ) else {
            break;
        };
        let Some(name) = names.next() else { break };
        let Some(offset) = pages.checked_mul(page) else {
            continue;
        };
        if end <= start {
            continue;
        }
        out.push(FileRegion {
            start,
            end,
            offset,
            path: String::from_utf8_lossy(name).into_owned(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nt_file_parses_and_refuses_nonsense() {
        let mut d = Vec::new();
        for v in [2u64, 4096, 0x1000, 0x3000, 0, 0x5000, 0x6000, 3] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(b"/a\0/b/c\0");
        let f = parse_nt_file(&d);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].path, "/b/c");
        assert_eq!(f[1].offset, 3 * 4096);
        assert!(parse_nt_file(&u64::MAX.to_le_bytes()).is_empty());
        assert!(parse_nt_file(&[1, 2, 3]).is_empty());
    }
}
