//! Training-time augmentation on raw pixel bytes, as in the paper: MNIST random rotation
//! (±15°) and scaling (0.8–1.2) about the centre with bilinear sampling; CIFAR-10 zero padding
//! by 4, a random 32×32 crop and a random horizontal flip.

use rand::rngs::StdRng;
use rand::Rng;

use crate::data::Dataset;
use crate::model::Shape;

/// An augmentation policy.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Augment {
    None,
    RotateScale { degrees: f64, scale: (f64, f64) },
    PadCropFlip { pad: usize },
}

impl Augment {
    /// The paper's policy for `dataset`.
    pub fn paper(dataset: Dataset) -> Self {
        match dataset {
            Dataset::Mnist => Augment::RotateScale {
                degrees: 15.0,
                scale: (0.8, 1.2),
            },
            Dataset::Cifar10 => Augment::PadCropFlip { pad: 4 },
        }
    }

    /// A one-line description for provenance.
    pub fn describe(&self) -> String {
        match self {
            Augment::None => "none".into(),
            Augment::RotateScale { degrees, scale } => format!(
                "random rotation ±{degrees}°, random scale {}–{} (bilinear)",
                scale.0, scale.1
            ),
            Augment::PadCropFlip { pad } => {
                format!("zero pad {pad}, random crop to the input size, random horizontal flip")
            }
        }
    }

    /// A randomly transformed copy of one image (channel-major bytes of `shape`).
    pub fn apply(&self, shape: Shape, pixels: &[u8], rng: &mut StdRng) -> Vec<u8> {
        match *self {
            Augment::None => pixels.to_vec(),
            Augment::RotateScale { degrees, scale } => {
                let angle = rng.random_range(-degrees..=degrees).to_radians();
                let s = rng.random_range(scale.0..=scale.1);
                rotate_scale(shape, pixels, angle, s)
            }
            Augment::PadCropFlip { pad } => {
                let dy = rng.random_range(0..=2 * pad) as isize - pad as isize;
                let dx = rng.random_range(0..=2 * pad) as isize - pad as isize;
                let flip = rng.random_bool(0.5);
                shift_flip(shape, pixels, dy, dx, flip)
            }
        }
    }
}

/// Output pixel (y, x) samples the input at the inverse rotation/scaling about the centre;
/// outside the image is zero.
fn rotate_scale(shape: Shape, pixels: &[u8], angle: f64, scale: f64) -> Vec<u8> {
    let (h, w) = (shape.h, shape.w);
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let mut out = vec![0u8; pixels.len()];
    for c in 0..shape.c {
        let plane = &pixels[c * h * w..(c + 1) * h * w];
        let get = |y: isize, x: isize| -> f64 {
            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                0.0
            } else {
                plane[y as usize * w + x as usize] as f64
            }
        };
        for y in 0..h {
            for x in 0..w {
                let (dy, dx) = (y as f64 - cy, x as f64 - cx);
                let sy = (cos * dy - sin * dx) / scale + cy;
                let sx = (sin * dy + cos * dx) / scale + cx;
                let (y0, x0) = (sy.floor(), sx.floor());
                let (fy, fx) = (sy - y0, sx - x0);
                let (y0, x0) = (y0 as isize, x0 as isize);
                let v = get(y0, x0) * (1.0 - fy) * (1.0 - fx)
                    + get(y0, x0 + 1) * (1.0 - fy) * fx
                    + get(y0 + 1, x0) * fy * (1.0 - fx)
                    + get(y0 + 1, x0 + 1) * fy * fx;
                out[c * h * w + y * w + x] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Output pixel (y, x) is input (y + dy, x + dx) (zero outside), mirrored left–right if `flip`:
/// a crop of the zero-padded image.
fn shift_flip(shape: Shape, pixels: &[u8], dy: isize, dx: isize, flip: bool) -> Vec<u8> {
    let (h, w) = (shape.h, shape.w);
    let mut out = vec![0u8; pixels.len()];
    for c in 0..shape.c {
        for y in 0..h {
            let sy = y as isize + dy;
            if sy < 0 || sy >= h as isize {
                continue;
            }
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x } as isize + dx;
                if sx >= 0 && sx < w as isize {
                    out[c * h * w + y * w + x] = pixels[c * h * w + sy as usize * w + sx as usize];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(shape: Shape) -> Vec<u8> {
        (0..shape.len()).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn identity_transforms_change_nothing() {
        let s = Shape::new(3, 8, 8);
        let img = ramp(s);
        assert_eq!(rotate_scale(s, &img, 0.0, 1.0), img);
        assert_eq!(shift_flip(s, &img, 0, 0, false), img);
    }

    #[test]
    fn a_flip_mirrors_and_a_shift_pads_with_zeros() {
        let s = Shape::new(1, 2, 3);
        let img = vec![1, 2, 3, 4, 5, 6];
        assert_eq!(shift_flip(s, &img, 0, 0, true), vec![3, 2, 1, 6, 5, 4]);
        assert_eq!(shift_flip(s, &img, 1, 0, false), vec![4, 5, 6, 0, 0, 0]);
        assert_eq!(shift_flip(s, &img, 0, -1, false), vec![0, 1, 2, 0, 4, 5]);
    }

    #[test]
    fn a_quarter_turn_moves_the_corner() {
        let s = Shape::new(1, 3, 3);
        let mut img = vec![0u8; 9];
        img[0] = 200; // top-left
        let turned = rotate_scale(s, &img, std::f64::consts::FRAC_PI_2, 1.0);
        assert_eq!(turned.iter().filter(|&&v| v > 0).count(), 1);
        assert_ne!(turned[0], 200);
        assert_eq!(turned.iter().map(|&v| v as u32).sum::<u32>(), 200);
    }

    #[test]
    fn augmentations_stay_within_the_image_and_are_seeded() {
        let s = Shape::new(3, 32, 32);
        let img = ramp(s);
        let a = Augment::paper(Dataset::Cifar10);
        let one = a.apply(s, &img, &mut StdRng::seed_from_u64(3));
        let two = a.apply(s, &img, &mut StdRng::seed_from_u64(3));
        assert_eq!(one, two);
        assert_eq!(one.len(), img.len());
    }
}
