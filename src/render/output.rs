//! Result files and standard output: `-o FILE` written atomically (see `crate::atomic_file`),
//! `-o -` or no `-o` to standard output.

use std::io::Write;
use std::path::Path;

pub fn write(path: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
        std::io::stdout().write_all(bytes)?;
        return Ok(());
    };
    crate::atomic_file::write(path, bytes, true)
}
