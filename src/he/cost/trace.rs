//! The modelled clock of one evaluation: while a trace is active on a thread, the symbolic
//! backend charges each operation's measured cost to it, and each parallel section runs its
//! tasks one after another and adds the time its threads would take to finish them.

use std::cell::RefCell;

use super::table::{CostError, Op, OpCosts};

/// A task (or the whole evaluation) being timed: the threads it may use, the threads of its
/// run at work meanwhile (it and its siblings), and its seconds so far.
struct Frame {
    threads: usize,
    busy: usize,
    seconds: f64,
}

struct Trace {
    costs: OpCosts,
    n: u64,
    /// Threads of the node at work besides this run's (other runs, other ranks).
    others: usize,
    frames: Vec<Frame>,
    /// Seconds of once-per-model work (weight plaintexts encoded into the store).
    setup: f64,
    error: Option<CostError>,
}

thread_local! {
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// What one traced evaluation costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Seconds of the evaluation on its threads.
    pub seconds: f64,
    /// Seconds of once-per-model work it asked for (single thread).
    pub setup: f64,
}

/// Runs `f` with a trace active on this thread, at ring degree `n` with `threads` threads while
/// `others` threads of the node work on other runs, and returns its result with the modelled
/// time. Each operation costs its measured time times the slowdown of the threads at work when
/// it runs: `others` and those of this run (one in a serial part, as many as a parallel
/// section's tasks keep busy in it).
pub fn measure<T>(
    costs: &OpCosts,
    n: u64,
    threads: usize,
    others: usize,
    f: impl FnOnce() -> T,
) -> Result<(T, Timing), CostError> {
    // the trace is removed also when `f` panics
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            TRACE.with(|t| t.borrow_mut().take());
        }
    }
    TRACE.with(|t| {
        *t.borrow_mut() = Some(Trace {
            costs: costs.clone(),
            n,
            others,
            frames: vec![Frame {
                threads: threads.max(1),
                busy: 1,
                seconds: 0.0,
            }],
            setup: 0.0,
            error: None,
        })
    });
    let guard = Guard;
    let out = f();
    let trace = TRACE
        .with(|t| t.borrow_mut().take())
        .expect("the trace is active");
    drop(guard);
    if let Some(e) = trace.error {
        return Err(e);
    }
    Ok((
        out,
        Timing {
            seconds: trace.frames[0].seconds,
            setup: trace.setup,
        },
    ))
}

/// Whether a trace is active on this thread.
pub fn active() -> bool {
    TRACE.with(|t| t.borrow().is_some())
}

/// The modelled seconds of the current task so far, while a trace is active: at the top of an
/// evaluation, the time since it began.
pub fn now() -> Option<f64> {
    TRACE.with(|t| t.borrow().as_ref().map(|t| top(&t.frames).seconds))
}

/// The threads the current task may use, while a trace is active.
pub fn threads() -> Option<usize> {
    TRACE.with(|t| t.borrow().as_ref().map(|t| top(&t.frames).threads))
}

fn top(frames: &[Frame]) -> &Frame {
    frames.last().expect("a trace has its outermost frame")
}

/// Charges `count` calls of `op` on operands of `primes` primes to the current task (no-op
/// without a trace).
pub fn charge(op: Op, primes: usize, count: usize) {
    charge_to(op, primes, count, |t, s| {
        t.frames.last_mut().expect("outermost frame").seconds += s
    });
}

/// Charges once-per-model work (no-op without a trace).
pub fn charge_setup(op: Op, primes: usize) {
    charge_to(op, primes, 1, |t, s| t.setup += s);
}

fn charge_to(op: Op, primes: usize, count: usize, add: impl FnOnce(&mut Trace, f64)) {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        let Some(t) = t.as_mut() else { return };
        match t.costs.seconds(op, t.n, primes) {
            Ok(s) => {
                let busy = t.others + top(&t.frames).busy;
                let s = s * t.costs.slowdown(t.n, busy) * count as f64;
                add(t, s)
            }
            Err(e) => {
                t.error.get_or_insert(e);
            }
        }
    });
}

/// Runs tasks `0..n` one after another, each timed in a frame of its own, and charges the
/// current task the time its threads take for all of them ([`makespan`]). Only while a trace
/// is active.
pub fn section<T>(n: usize, mut task: impl FnMut(usize) -> T) -> Vec<T> {
    let threads = threads().unwrap_or(1);
    let mut times = Vec::with_capacity(n);
    let out = (0..n)
        .map(|i| {
            let share = task_threads(threads, n, i);
            TRACE.with(|t| {
                if let Some(t) = t.borrow_mut().as_mut() {
                    let busy = top(&t.frames).busy.max(n.min(threads));
                    t.frames.push(Frame {
                        threads: share,
                        busy,
                        seconds: 0.0,
                    });
                }
            });
            let r = task(i);
            let s = TRACE.with(|t| {
                t.borrow_mut()
                    .as_mut()
                    .and_then(|t| t.frames.pop())
                    .map_or(0.0, |f| f.seconds)
            });
            times.push(s);
            r
        })
        .collect();
    let span = makespan(&times, threads);
    TRACE.with(|t| {
        if let Some(t) = t.borrow_mut().as_mut() {
            t.frames.last_mut().expect("outermost frame").seconds += span;
        }
    });
    out
}

/// The threads task `i` of `n` gets out of `threads`: one each when there are at least as many
/// tasks as threads, else the threads shared out (the first tasks one more).
pub fn task_threads(threads: usize, n: usize, i: usize) -> usize {
    if n >= threads {
        1
    } else {
        threads / n + usize::from(i < threads % n)
    }
}

/// The time `threads` threads take for tasks of `times` seconds: with at least as many tasks
/// as threads, each task in order goes to the thread that is free first (as a work-stealing
/// pool takes them); with fewer, every task runs at once on its share and the longest decides.
pub fn makespan(times: &[f64], threads: usize) -> f64 {
    if times.len() < threads {
        return times.iter().copied().fold(0.0, f64::max);
    }
    let mut free = vec![0.0f64; threads.max(1)];
    for &t in times {
        let k = (0..free.len())
            .min_by(|&a, &b| free[a].total_cmp(&free[b]))
            .expect("at least one thread");
        free[k] += t;
    }
    free.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::he::cost::table::{Curve, Source};
    use crate::he::parallel::par_map;

    #[test]
    fn makespan_by_hand() {
        // in order, each to the thread free first: 3 | 1 then 2 | then 2 on the first → 5
        assert_eq!(makespan(&[3.0, 1.0, 2.0, 2.0], 2), 5.0);
        // fewer tasks than threads: all at once
        assert_eq!(makespan(&[4.0, 1.0], 3), 4.0);
        assert_eq!(makespan(&[], 4), 0.0);
        assert_eq!(
            (0..2).map(|i| task_threads(5, 2, i)).collect::<Vec<_>>(),
            vec![3, 2]
        );
        assert_eq!(task_threads(2, 3, 2), 1);
    }

    /// Rotations cost 1 ms at one prime and 3 ms at three (2 ms at two, between them), `slowdown`
    /// times that with others at work.
    fn rotations_only(slowdown: Vec<(usize, f64)>) -> OpCosts {
        let curve = Curve {
            primes: vec![1, 3],
            ms: BTreeMap::from([(Op::Rotate, vec![1.0, 3.0])]),
            slowdown,
            key_ms_per_mb: 0.0,
        };
        OpCosts::from_curves(Source::BuiltIn, BTreeMap::from([(8192, curve)]))
    }

    #[test]
    fn a_traced_evaluation_by_hand() {
        let costs = rotations_only(vec![]);
        let ms = |threads: usize| {
            let (out, t) = measure(&costs, 8192, threads, 1, || {
                charge(Op::Rotate, 2, 1); // 2 ms on the evaluation's thread
                                          // three 1-ms tasks
                par_map(3, |_| {
                    charge(Op::Rotate, 1, 1);
                    Ok(())
                })
                .unwrap();
                // one task holding every thread, inside it two 1-ms tasks
                par_map(1, |_| {
                    par_map(2, |_| {
                        charge(Op::Rotate, 1, 1);
                        Ok(1)
                    })
                })
                .unwrap()
            })
            .unwrap();
            assert_eq!(out, vec![vec![1, 1]]);
            (t.seconds * 1e3 * 1e6).round() / 1e6
        };
        assert_eq!(ms(1), 2.0 + 3.0 + 2.0);
        assert_eq!(ms(2), 2.0 + 2.0 + 1.0);
        assert_eq!(ms(4), 2.0 + 1.0 + 1.0);
        assert!(!active(), "the trace ends with its evaluation");
    }

    #[test]
    fn costs_grow_by_the_slowdown_of_the_threads_at_work() {
        let costs = rotations_only(vec![(1, 1.0), (2, 1.5), (4, 2.0)]);
        let ms = |others: usize| {
            let ((), t) = measure(&costs, 8192, 1, others, || charge(Op::Rotate, 1, 2)).unwrap();
            (t.seconds * 1e3 * 1e9).round() / 1e9
        };
        // 2 ms alone; ×1.5 with 2 at work, ×1.75 with 3 (between 2 and 4), ×2 with 4 and beyond
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(71)],
            [2.0, 3.0, 3.5, 4.0, 4.0]
        );
        // a run on 2 threads alone: its serial part at ×1, a section of two tasks at ×1.5
        let ((), t) = measure(&costs, 8192, 2, 0, || {
            charge(Op::Rotate, 1, 1);
            par_map(2, |_| {
                charge(Op::Rotate, 1, 1);
                Ok(())
            })
            .unwrap();
        })
        .unwrap();
        assert!((t.seconds * 1e3 - 2.5).abs() < 1e-12, "{}", t.seconds);
    }

    #[test]
    fn an_operation_without_a_cost_is_an_error_naming_it() {
        let costs = rotations_only(vec![]);
        let e = measure(&costs, 8192, 1, 1, || charge(Op::Square, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("no cost of square"), "{e}");
        let e = measure(&costs, 16384, 1, 1, || charge(Op::Rotate, 1, 1)).unwrap_err();
        assert!(e.to_string().contains("N=16384"), "{e}");
    }
}
