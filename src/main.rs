//! The `hejob` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use hejob::cli::Cli;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match hejob::commands::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hejob: error: {e}");
            ExitCode::FAILURE
        }
    }
}
