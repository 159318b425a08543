//! What each command does once parsed: one module per command, each the glue from its
//! arguments to the library and the printing of what comes back. Nothing here computes what a
//! library module could.

mod bench;
mod datasets;
mod decrypt;
mod encrypt;
mod eval;
mod fit;
mod infer;
mod isolate;
mod keys;
mod model;
mod plan;
mod recalibrate;

use crate::cli::{Cli, Command, ProbeKind};
use crate::error::{Error, UsageError};
use crate::job::{self, config::Overrides};

/// Runs one parsed command line: a job (`--config`) or a subcommand.
pub fn run(cli: Cli) -> Result<(), Error> {
    let command = match (cli.command, cli.config) {
        (Some(c), _) => c,
        (None, Some(config)) => {
            let overrides = Overrides {
                limit: cli.limit,
                offset: cli.offset,
                output: cli.output,
                threads: cli.threads,
                runs_in_flight: cli.runs_in_flight,
            };
            // before MPI starts: the files the job will read or write over, probed
            if let Ok((file, _)) = job::config::JobFile::read(&config) {
                isolate::probe(ProbeKind::Model, &file.model)?;
                let output = overrides.output.as_ref().unwrap_or(&file.output);
                isolate::probe(ProbeKind::Output, output)?;
            }
            job::runner::run(&config, &overrides)?;
            return Ok(());
        }
        (None, None) => return Err(UsageError::NoCommand.into()),
    };
    match command {
        Command::Fit(a) => fit::run(a),
        Command::ProbeHdf5 { kind, file } => isolate::read(kind, &file),
        Command::Model(c) => {
            match &c {
                crate::cli::ModelCommand::Info { model } => {
                    isolate::probe(ProbeKind::Model, model)?
                }
                crate::cli::ModelCommand::New { out, .. } => {
                    isolate::probe(ProbeKind::Output, out)?
                }
                crate::cli::ModelCommand::Import(a) => isolate::probe(ProbeKind::Output, &a.out)?,
            }
            model::run(c)
        }
        Command::Eval(a) => {
            isolate::probe(ProbeKind::Model, &a.model)?;
            eval::run(a)
        }
        Command::Plan(a) => {
            isolate::probe(ProbeKind::Model, &a.target.model)?;
            plan::run(a)
        }
        Command::Report(a) => {
            for file in &a.files {
                isolate::probe(ProbeKind::Result, file)?;
            }
            for path in crate::report::report(&a.files, &a.out)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Datasets(c) => datasets::run(c),
        Command::BenchOps(a) => bench::ops(a),
        Command::BenchPackings(a) => bench::packings(a),
        Command::Infer(a) => {
            isolate::probe(ProbeKind::Model, &a.model)?;
            infer::run(a)
        }
        Command::Keys(c) => keys::run(c),
        Command::Encrypt(a) => encrypt::run(a),
        Command::Decrypt(a) => decrypt::run(a),
        Command::Recalibrate(a) => {
            isolate::probe(ProbeKind::Model, &a.model)?;
            isolate::probe(ProbeKind::Output, &a.out)?;
            recalibrate::run(a)
        }
        #[cfg(feature = "train")]
        Command::Train(a) => {
            isolate::probe(ProbeKind::Output, &a.out)?;
            let (net, options) = ((&a.net).into(), (&a.training).into());
            crate::train::command::train(&net, a.init, &a.out, a.epochs, &options)?;
            Ok(())
        }
        #[cfg(feature = "train")]
        Command::Prune(a) => {
            isolate::probe(ProbeKind::Model, &a.model)?;
            isolate::probe(ProbeKind::Output, &a.out)?;
            let (m, l, r, o) = (&a.model, &a.layer, a.ratio, &a.out);
            crate::train::command::prune(m, l, r, o, a.epochs, &(&a.training).into())?;
            Ok(())
        }
        #[cfg(feature = "train")]
        Command::Retrain(a) => {
            isolate::probe(ProbeKind::Model, &a.model)?;
            isolate::probe(ProbeKind::Output, &a.out)?;
            let options = (&a.training).into();
            crate::train::command::retrain(&a.model, &a.out, a.epochs, &options)?;
            Ok(())
        }
    }
}

/// Test images `offset..offset + limit` (`None`: to the end) of a test set of `available`, or
/// exactly `images` where given; every index checked.
fn select_images(
    available: usize,
    offset: usize,
    limit: Option<usize>,
    images: Vec<usize>,
) -> Result<Vec<usize>, UsageError> {
    if !images.is_empty() {
        if let Some(&index) = images.iter().find(|&&i| i >= available) {
            return Err(UsageError::Image { index, available });
        }
        return Ok(images);
    }
    let limit = limit.unwrap_or(available.saturating_sub(offset));
    match offset.checked_add(limit).filter(|&e| e <= available) {
        Some(end) => Ok((offset..end).collect()),
        None => Err(UsageError::Range {
            offset,
            limit,
            available,
        }),
    }
}
