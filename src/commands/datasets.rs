//! `hejob datasets check` and `hejob datasets fetch`: the official files verified by their
//! checksums, or downloaded and verified.

use crate::cli::DatasetsCommand;
use crate::data::{checksums, fetch, DataError, Dataset};
use crate::Error;

/// Runs `datasets check` or `datasets fetch`.
pub fn run(command: DatasetsCommand) -> Result<(), Error> {
    match command {
        DatasetsCommand::Check { dir, json } => {
            let mut all = Vec::new();
            for d in Dataset::ALL {
                all.extend(checksums::check(&dir, d)?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for c in &all {
                    println!(
                        "{:<8} {:?}  {}",
                        c.dataset.name(),
                        c.status,
                        c.path.display()
                    );
                }
            }
            let bad = all
                .iter()
                .filter(|c| c.status != checksums::Status::Ok)
                .count();
            if bad > 0 {
                return Err(DataError::Incomplete { dir, bad }.into());
            }
        }
        DatasetsCommand::Fetch {
            dir,
            mnist_url,
            cifar10_url,
            dataset,
        } => {
            let sources = fetch::Sources {
                mnist: mnist_url,
                cifar10: cifar10_url,
            };
            for d in dataset.map_or(Dataset::ALL.to_vec(), |d| vec![d]) {
                fetch::fetch(&dir, d, &sources)?;
            }
        }
    }
    Ok(())
}
