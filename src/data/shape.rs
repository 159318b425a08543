//! The shape of an image or a feature map: channels × height × width.

use serde::{Deserialize, Serialize};

/// A feature-map shape, channels × height × width (a flat vector is `n × 1 × 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// True for a shape without values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for a flat vector (`n × 1 × 1`).
    pub fn is_flat(&self) -> bool {
        self.h == 1 && self.w == 1
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.c, self.h, self.w)
    }
}
