//! The parallel sections of an evaluation: rayon's threads in a real run; under the cost
//! model's trace ([`super::cost::trace`]) the same tasks one after another, timed as the
//! threads would take them. Every parallel loop of a packing goes through here.

use super::cost::trace;
use super::HeError;

/// Runs `f` for every index in parallel and collects the results in order.
pub(crate) fn par_map<T: Send>(
    n: usize,
    f: impl Fn(usize) -> Result<T, HeError> + Sync + Send,
) -> Result<Vec<T>, HeError> {
    if trace::active() {
        return trace::section(n, f).into_iter().collect();
    }
    use rayon::prelude::*;
    (0..n).into_par_iter().map(f).collect()
}

/// Consumes `items`, applying `f(item, index)` to each in parallel, results in order.
pub(crate) fn par_each<T: Send, U: Send>(
    items: Vec<T>,
    f: impl Fn(T, usize) -> Result<U, HeError> + Sync + Send,
) -> Result<Vec<U>, HeError> {
    if trace::active() {
        let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
        let n = items.len();
        return trace::section(n, |i| f(items[i].take().expect("each item once"), i))
            .into_iter()
            .collect();
    }
    use rayon::prelude::*;
    items
        .into_par_iter()
        .enumerate()
        .map(|(i, t)| f(t, i))
        .collect()
}

/// The threads the current task may use: the traced task's share, else the rayon pool's size.
pub(crate) fn width() -> usize {
    trace::threads()
        .unwrap_or_else(rayon::current_num_threads)
        .max(1)
}
