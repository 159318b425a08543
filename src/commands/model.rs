//! `hejob model new` and `hejob model info`: a random-weight model of the paper's
//! architectures, and a model file's layers, shapes, parameters and provenance.

use crate::cli::ModelCommand;
use crate::model::{arch, file};
use crate::Error;

/// Runs `model new` or `model info`.
pub fn run(command: ModelCommand) -> Result<(), Error> {
    match command {
        ModelCommand::New { net, seed, out } => {
            file::check_output(&out, &[])?;
            let model = arch::random_model(net.arch, &net.activation, net.conv2_channels, seed)?;
            file::save(&model, &out)?;
            log::info!("wrote {} ({} layers)", out.display(), model.layers.len());
        }
        ModelCommand::Info { model } => {
            let m = file::load(&model)?;
            let shapes = m.validate()?;
            println!(
                "{} — {} input {}, {} classes",
                model.display(),
                m.dataset,
                m.input,
                m.classes.len()
            );
            for (layer, shape) in m.layers.iter().zip(&shapes) {
                println!(
                    "  {:<12} {:<15} -> {shape}  ({} parameters)",
                    layer.name,
                    layer.kind_name(),
                    layer.parameters()
                );
            }
            let total: usize = m.layers.iter().map(|l| l.parameters()).sum();
            println!("  total trainable parameters: {total}");
            for (k, v) in &m.provenance {
                println!("  {k}: {v}");
            }
        }
    }
    Ok(())
}
