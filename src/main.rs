//! The `hejob` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use hejob::cli::{Cli, Command};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hejob: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), hejob::Error> {
    match cli.command {
        Command::BenchOps {
            degrees,
            seconds,
            json,
        } => {
            let budget = Duration::from_secs_f64(seconds);
            let mut results = Vec::new();
            for n in degrees {
                let params = hejob::bench::default_params(n)?;
                log::info!("benchmarking N={n}, primes {:?}", params.coeff_modulus_bits);
                results.push(hejob::bench::bench_ops(&params, budget)?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print!("{}", hejob::bench::markdown(&results));
            }
        }
    }
    Ok(())
}
