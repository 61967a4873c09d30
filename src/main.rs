//! The `lanyard` binary: parse the command line and run it.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    lanyard::cli::run(lanyard::cli::Cli::parse())
}
