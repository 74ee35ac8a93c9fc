//! The only writes pymemspy makes into another process, all for turning its tracing on
//! (`live_tracing`): data with process_vm_writev (a thread state's fields, a thread's dead
//! stack), and one byte of text through /proc/PID/mem (a breakpoint, put back before anything
//! else). Nothing else in the tree writes to a target.

use anyhow::{bail, Context, Result};
use nix::sys::uio::{process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;

/// Write `data` at `addr` in writable memory of `pid`, all of it or fail.
pub fn data(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: data.len(),
    }];
    let n = process_vm_writev(Pid::from_raw(pid), &[IoSlice::new(data)], &remote).with_context(
        || {
            format!(
                "cannot write {} bytes at {addr:#x} in process {pid}",
                data.len()
            )
        },
    )?;
    if n != data.len() {
        bail!(
            "short write at {addr:#x} in process {pid}: {n} of {} bytes",
            data.len()
        );
    }
    Ok(())
}

/// A process's text, opened for the one-byte breakpoint writes (needs ptrace rights).
pub struct Text {
    mem: std::fs::File,
}

impl Text {
    pub fn open(pid: i32) -> Result<Text> {
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .with_context(|| format!("cannot open /proc/{pid}/mem for writing"))?;
        Ok(Text { mem })
    }

    pub fn byte(&self, addr: u64) -> Result<u8> {
        let mut b = [0u8; 1];
        self.mem
            .read_exact_at(&mut b, addr)
            .with_context(|| format!("cannot read the byte at {addr:#x}"))?;
        Ok(b[0])
    }

    pub fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.mem
            .read_exact_at(&mut b, addr)
            .with_context(|| format!("cannot read {len} bytes at {addr:#x}"))?;
        Ok(b)
    }

    /// Write one byte and read it back.
    pub fn set_byte(&self, addr: u64, value: u8) -> Result<()> {
        self.mem
            .write_all_at(&[value], addr)
            .with_context(|| format!("cannot write the byte at {addr:#x}"))?;
        if self.byte(addr)? != value {
            bail!("the byte at {addr:#x} did not take the value written");
        }
        Ok(())
    }
}
