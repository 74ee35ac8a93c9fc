//! Reading the target's memory. Everything above this module sees only the `Memory` trait, so a
//! live process, a core file or a fake heap for fuzzing run the same walkers.

use std::fmt;

/// Why a read of target memory failed. Kept small: walkers count faults, they do not stop on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The address is not mapped (or only partly), typical of a stale pointer.
    Unmapped,
    /// The kernel refused: ptrace access mode check failed.
    Permission,
    /// The process is gone.
    Gone,
    Other,
}

#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub addr: u64,
    pub len: usize,
    pub kind: FaultKind,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} reading {} bytes at {:#x}",
            self.kind, self.len, self.addr
        )
    }
}

impl std::error::Error for Fault {}

/// Read-only access to a target address space. There is deliberately no write method anywhere.
/// Sync: a census may read through several views at once, one per thread.
pub trait Memory: Sync {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault>;

    /// Several reads at once: `ok[i]` says whether `reads[i]` was filled. A live process does
    /// them in one system call (a sampler reading a few scattered pools per tick pays one
    /// call's cost, not one per pool).
    fn read_many(&self, reads: &mut [(u64, &mut [u8])]) -> Vec<bool> {
        reads
            .iter_mut()
            .map(|(a, b)| self.read(*a, b).is_ok())
            .collect()
    }
}

/// A live process, read with process_vm_readv (through remoteprocess).
pub struct LiveMemory {
    process: remoteprocess::Process,
}

impl LiveMemory {
    pub fn new(pid: i32) -> LiveMemory {
        LiveMemory {
            process: remoteprocess::Process { pid },
        }
    }

    pub fn process(&self) -> &remoteprocess::Process {
        &self.process
    }
}

impl Memory for LiveMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        use remoteprocess::ProcessMemory;
        if buf.is_empty() {
            return Ok(());
        }
        self.process.read(addr as usize, buf).map_err(|e| Fault {
            addr,
            len: buf.len(),
            kind: classify(&e),
        })
    }

    fn read_many(&self, reads: &mut [(u64, &mut [u8])]) -> Vec<bool> {
        use nix::sys::uio::{process_vm_readv, RemoteIoVec};
        use std::io::IoSliceMut;
        // The kernel stops at the first range it cannot read: what follows is read one by one.
        let remote: Vec<RemoteIoVec> = reads
            .iter()
            .map(|(a, b)| RemoteIoVec {
                base: *a as usize,
                len: b.len(),
            })
            .collect();
        let lens: Vec<usize> = reads.iter().map(|(_, b)| b.len()).collect();
        let done = {
            let mut local: Vec<IoSliceMut> =
                reads.iter_mut().map(|(_, b)| IoSliceMut::new(b)).collect();
            let pid = nix::unistd::Pid::from_raw(self.process.pid);
            process_vm_readv(pid, &mut local, &remote).unwrap_or(0)
        };
        let mut ok = Vec::with_capacity(reads.len());
        let mut left = done;
        for (i, len) in lens.into_iter().enumerate() {
            if left >= len {
                left -= len;
                ok.push(true);
            } else {
                left = 0;
                let (a, b) = &mut reads[i];
                ok.push(self.read(*a, b).is_ok());
            }
        }
        ok
    }
}

fn classify(e: &remoteprocess::Error) -> FaultKind {
    let code = match e {
        remoteprocess::Error::IOError(io) => io.raw_os_error(),
        remoteprocess::Error::NixError(errno) => Some(*errno as i32),
        _ => None,
    };
    match code {
        Some(libc::EFAULT) | Some(libc::EIO) => FaultKind::Unmapped,
        Some(libc::EPERM) | Some(libc::EACCES) => FaultKind::Permission,
        Some(libc::ESRCH) => FaultKind::Gone,
        _ => FaultKind::Other,
    }
}

/// Little-endian field access on bytes already copied out of the target.
pub trait Bytes {
    fn u8_at(&self, off: usize) -> u8;
    fn u16_at(&self, off: usize) -> u16;
    fn u32_at(&self, off: usize) -> u32;
    fn u64_at(&self, off: usize) -> u64;
    fn i64_at(&self, off: usize) -> i64 {
        self.u64_at(off) as i64
    }
}

impl Bytes for [u8] {
    fn u8_at(&self, off: usize) -> u8 {
        self.get(off).copied().unwrap_or(0)
    }
    fn u16_at(&self, off: usize) -> u16 {
        self.get(off..off + 2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap_or([0; 2])))
            .unwrap_or(0)
    }
    fn u32_at(&self, off: usize) -> u32 {
        self.get(off..off + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
            .unwrap_or(0)
    }
    fn u64_at(&self, off: usize) -> u64 {
        self.get(off..off + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
    }
}

/// Convenience reads of single values. Only for the few reads made while locating the runtime;
/// walkers go through `View`, which reads in bulk.
pub trait MemoryExt: Memory {
    fn u64(&self, addr: u64) -> Result<u64, Fault> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn u32(&self, addr: u64) -> Result<u32, Fault> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Fault> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }
}

impl<M: Memory + ?Sized> MemoryExt for M {}

#[cfg(test)]
pub mod fake {
    //! A fake address space for unit tests and fuzzing of the walkers.
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    pub struct FakeMemory {
        regions: BTreeMap<u64, Vec<u8>>,
    }

    impl FakeMemory {
        pub fn map(&mut self, addr: u64, data: Vec<u8>) {
            self.regions.insert(addr, data);
        }
    }

    impl Memory for FakeMemory {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
            let fault = Fault {
                addr,
                len: buf.len(),
                kind: FaultKind::Unmapped,
            };
            let (start, data) = self.regions.range(..=addr).next_back().ok_or(fault)?;
            let off = (addr - start) as usize;
            let end = off.checked_add(buf.len()).ok_or(fault)?;
            if end > data.len() {
                return Err(fault);
            }
            buf.copy_from_slice(&data[off..end]);
            Ok(())
        }
    }
}
