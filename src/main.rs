//! The `hejob` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use hejob::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // a job's log_level is the default; RUST_LOG still overrides it
    let level = cli
        .config
        .as_deref()
        .and_then(|c| hejob::job::config::JobFile::read(c).ok())
        .map_or("info".to_string(), |(f, _)| f.log_level().to_string());
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match hejob::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hejob: error: {e}");
            ExitCode::FAILURE
        }
    }
}
