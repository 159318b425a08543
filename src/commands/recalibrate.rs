//! `hejob recalibrate`: a model's batch-norm statistics estimated again on the unaugmented
//! training images, weights untouched.

use crate::cli::RecalibrateArgs;
use crate::data;
use crate::model::{file, plain, recalibrate};
use crate::Error;

/// Recalibrates, writes the model, prints the accuracy before and after.
pub fn run(a: RecalibrateArgs) -> Result<(), Error> {
    file::check_output(&a.out, &[&a.model])?;
    let mut m = file::load(&a.model)?;
    let dir = data::resolve_dir(a.data_dir.as_deref());
    let train = m.dataset.load_train(&dir)?;
    let test = m.dataset.load_test(&dir)?;
    let (_, before) = plain::accuracy(&m, &test, None);
    let n = recalibrate::batch_norm_statistics(&mut m, &train, a.limit);
    let after = plain::record_accuracy(&mut m, &test);
    file::save(&m, &a.out)?;
    println!(
        "{}: batch-norm statistics from {n} training images; plain test accuracy {:.2}% → {:.2}%; wrote {}",
        a.model.display(),
        100.0 * before,
        100.0 * after,
        a.out.display()
    );
    Ok(())
}
