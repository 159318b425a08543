//! `hejob model new`, `info` and `import`: a random-weight model of the paper's architectures,
//! a model file's layers, shapes, parameters and provenance, and a model from an ONNX graph.

use crate::cli::{ImportArgs, ModelCommand};
use crate::model::{arch, file, onnx, Preprocess};
use crate::Error;

/// Runs `model new`, `model info` or `model import`.
pub fn run(command: ModelCommand) -> Result<(), Error> {
    match command {
        ModelCommand::New { net, seed, out } => {
            file::check_output(&out, &[])?;
            let model = arch::random_model(net.arch, &net.activation, net.conv2_channels, seed)?;
            file::save(&model, &out)?;
            log::info!("wrote {} ({} layers)", out.display(), model.layers.len());
        }
        ModelCommand::Import(a) => import(&a)?,
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

/// `model import`: the graph lowered, checked and written; nothing is written on a refusal.
fn import(a: &ImportArgs) -> Result<(), Error> {
    file::check_output(&a.out, &[&a.onnx])?;
    let standard = Preprocess::standard(a.dataset);
    let preprocess = Preprocess {
        scale: a.scale.unwrap_or(standard.scale),
        mean: a.mean.clone().unwrap_or(standard.mean),
        std: a.std.clone().unwrap_or(standard.std),
    };
    let model = onnx::import(&a.onnx, a.dataset, preprocess)?;
    file::save(&model, &a.out)?;
    let kinds: Vec<String> = model
        .layers
        .iter()
        .map(|l| match &l.kind {
            crate::model::LayerKind::Activation(_, name) => format!("{} ({name})", l.name),
            _ => l.name.clone(),
        })
        .collect();
    println!(
        "wrote {}: {} layers from {} ({})",
        a.out.display(),
        model.layers.len(),
        a.onnx.display(),
        kinds.join(", ")
    );
    Ok(())
}
