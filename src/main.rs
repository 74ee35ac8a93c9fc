//! pymemspy: where is the memory of a running CPython process?
//!
//! The pipeline is the module tree: `process` (reading the target) → `python` (which build,
//! which layout) → `heap` (walking objects) → `analysis` (census, growth, retention) →
//! `render` (tables, JSON, flamegraphs).

mod analysis;
mod atomic_file;
mod cli;
mod cli_heap;
mod cli_production;
mod cli_stacks;
mod error;
mod heap;
mod process;
mod python;
mod record;
mod render;
mod top;

fn main() {
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
