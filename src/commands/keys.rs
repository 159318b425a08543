//! `hejob keys`: private mode's key folders.

use crate::cli::{KeysCommand, KeysNewArgs, ProbeKind};
use crate::model::file;
use crate::private::folder::{self, KeyRequest, EVALUATION, PUBLIC, SECRET};
use crate::Error;

pub fn run(c: KeysCommand) -> Result<(), Error> {
    match c {
        KeysCommand::New(a) => new(a),
    }
}

/// Writes the folder and says what is in it and what goes where.
fn new(a: KeysNewArgs) -> Result<(), Error> {
    let t = &a.target;
    super::isolate::probe(ProbeKind::Model, &t.model)?;
    let model = file::load(&t.model)?;
    let m = folder::create(
        &a.out,
        &KeyRequest {
            model_path: &t.model,
            model: &model,
            packing: t.packing,
            scale_bits: t.precision.scale_bits,
        },
    )?;
    let size =
        |name: &str| std::fs::metadata(a.out.join(name)).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "key folder {} for {} under {} (N={}, scale 2^{}), key id {}",
        a.out.display(),
        t.model.display(),
        m.packing,
        m.params.poly_modulus_degree,
        m.params.scale_bits,
        m.key_id
    );
    println!(
        "  {SECRET}: {:.1} MB, mode 0600: keep it here; never copy it to the cluster",
        size(SECRET)
    );
    println!(
        "  {PUBLIC} ({:.1} MB), {EVALUATION} ({:.1} MB), {}: copy these to the cluster",
        size(PUBLIC),
        size(EVALUATION),
        folder::PLAN
    );
    Ok(())
}
