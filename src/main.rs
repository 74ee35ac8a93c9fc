//! The `pymemspy` command: the library's `cli` on top of the library (`src/lib.rs`), and the
//! tracer process `live_tracing` re-executes this binary as.

use pymemspy::{cli, error, live_tracing};

fn main() {
    // The tracer process of `live_tracing` (not a user command: no help, no parsing).
    if std::env::args().nth(1).as_deref() == Some(live_tracing::SAFE_POINT_COMMAND) {
        std::process::exit(live_tracing::safe_point_command());
    }
    return_freed_memory();
    env_logger::Builder::from_env(env_logger::Env::default().filter_or("PYMEMSPY_LOG", "warn"))
        .init();
    if let Err(e) = cli::run() {
        // One line a person can act on; the chain of causes only when it adds something.
        let mut msg = e.to_string();
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str(": ");
                msg.push_str(&c);
            }
        }
        eprintln!("pymemspy: {msg}");
        std::process::exit(
            e.downcast_ref::<error::Error>()
                .map_or(1, error::Error::exit_code),
        );
    }
}

/// Large arrays (a whole-heap analysis allocates and frees several of hundreds of megabytes)
/// are given back to the system when freed. glibc otherwise raises its mmap threshold after
/// the first such free, and later arrays come from a heap that keeps freed memory: measured on
/// a 4M-object `why`, a peak of 378 MB against 287 MB with the threshold fixed.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}
