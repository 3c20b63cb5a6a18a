//! `riskstream`: the engine's one binary. `run` is the production entry point,
//! `demo` the main job on embedded defaults; `import`, `query`, `verify` and
//! `replay` work offline on a data dir.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// The engine allocates millions of small rows and positions (at load, per batch);
/// mimalloc's per-thread free lists make that a third cheaper than glibc's arenas
/// (docs/BENCHMARKS.md, "Restart and replay").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // docs/CLI.md, "Exit status": 1 a check failed, 2 the command could not run.
            if e.downcast_ref::<cli::CheckFailed>().is_some() {
                cli::EXIT_CHECK_FAILED
            } else {
                ExitCode::from(2)
            }
        }
    }
}
