//! Homomorphic operation counters: atomic while threads evaluate, plain numbers once taken.
//! Only [`super::exec::Exec`] counts, the same way for every backend.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Declares the live counters ([`OpCounts`]) and their snapshot ([`OpTally`]) from one list,
/// so that the two can never disagree on which operations exist.
macro_rules! op_counters {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        /// Live counters, shared by every thread evaluating one unit of work (an image, a
        /// layer, a batch). Relaxed atomics: each count is exact, with no ordering between them.
        #[derive(Debug, Default)]
        pub struct OpCounts {
            $($(#[$doc])* pub $name: AtomicU64,)+
        }

        /// A snapshot of [`OpCounts`]: plain numbers that add up across images and ranks.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct OpTally {
            $($(#[$doc])* pub $name: u64,)+
        }

        impl OpCounts {
            /// The counts so far.
            pub fn snapshot(&self) -> OpTally {
                OpTally { $($name: self.$name.load(Ordering::Relaxed),)+ }
            }
        }

        impl OpTally {
            /// The names of the counted operations, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),+];

            /// Each count divided by `n` (rounded down), e.g. per inference of `n` runs.
            pub fn divided_by(&self, n: u64) -> OpTally {
                OpTally { $($name: self.$name / n.max(1),)+ }
            }

            /// The counts in the order of [`OpTally::NAMES`].
            pub fn values(&self) -> Vec<u64> {
                vec![$(self.$name),+]
            }

            /// The tally with these counts, in the order of [`OpTally::NAMES`]; `None` unless
            /// there is exactly one count per name.
            pub fn from_values(values: &[u64]) -> Option<OpTally> {
                if values.len() != Self::NAMES.len() {
                    return None;
                }
                let mut next = values.iter().copied();
                Some(OpTally { $($name: next.next()?,)+ })
            }
        }

        impl std::ops::AddAssign for OpTally {
            fn add_assign(&mut self, other: Self) {
                $(self.$name += other.$name;)+
            }
        }

        impl std::ops::Sub for OpTally {
            type Output = OpTally;
            /// The operations done between two snapshots (`later - earlier`).
            fn sub(self, earlier: Self) -> Self {
                OpTally { $($name: self.$name - earlier.$name,)+ }
            }
        }
    };
}

op_counters! {
    /// Ciphertext × plaintext products actually computed.
    hmulplain,
    /// Ciphertext squarings.
    hsquare,
    /// Ciphertext × ciphertext products (other than squaring).
    hmul,
    /// Additions and subtractions (ciphertext or plaintext operand).
    hadd,
    /// Slot rotations requested, as the paper counts them: one per kernel offset, channel or
    /// rotate-and-sum step, including steps that are a multiple of the slot count.
    rotation,
    /// Of those, rotations by a multiple of the slot count: a copy, no key switch.
    rotation_zero,
    /// Relinearizations.
    relinearize,
    /// Rescales (one prime dropped, scale divided by it).
    rescale,
    /// Modulus switches without rescaling (to combine operands of different depth).
    mod_switch,
    /// Plaintext encodings done during evaluation.
    encode,
    /// Products skipped because the plaintext was exactly zero.
    skipped_zero,
}

impl OpCounts {
    pub(crate) fn bump(counter: &AtomicU64) {
        Self::bump_by(counter, 1);
    }

    /// Adds `n` to one counter.
    pub(crate) fn bump_by(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl std::ops::Add for OpTally {
    type Output = OpTally;
    fn add(mut self, other: Self) -> Self {
        self += other;
        self
    }
}

impl std::iter::Sum for OpTally {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(OpTally::default(), |a, b| a + b)
    }
}
