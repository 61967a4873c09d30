//! The `lanyard` binary: parse the command line and run it.

use std::process::ExitCode;

use clap::Parser as _;

// mimalloc: per-thread free lists instead of glibc's arenas; measured in BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    lanyard::cli::run(lanyard::cli::Cli::parse())
}
