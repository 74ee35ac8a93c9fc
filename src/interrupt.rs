//! Ctrl-C as every long command takes it: the first one sets a flag the command polls (it then
//! ends and writes what it has), a second one leaves at once with status 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Install the handler (once per process) and return the flag the first Ctrl-C sets.
pub fn first_ctrl_c() -> Result<Arc<AtomicBool>, ctrlc::Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })?;
    Ok(stop)
}
