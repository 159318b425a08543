//! Where `channel-fast` keeps a feature map: channel planes in equal blocks of slots (a plane's
//! span each), many per ciphertext and possibly repeated, or, after a dense layer, one
//! ciphertext whose slots repeat the values with a period. Also the client's input layout, in
//! which a first convolution's kernel offsets are laid out by the client (im2col).

use super::super::grid::Grid;
use crate::he::Network;
use crate::model::{Conv, LayerKind};

/// A feature map's place in the slots of its ciphertexts.
#[derive(Clone, Debug)]
pub(super) enum Layout {
    /// Block `b` (slots `b·block .. (b+1)·block`) of ciphertext `t` holds channel
    /// `chans[t][b]` (`None`: nothing of use), value `(y, x)` at `b·block + grid.slot(y, x)`.
    Planes {
        grid: Grid,
        block: usize,
        chans: Vec<Vec<Option<usize>>>,
    },
    /// One ciphertext; value `u < len` at every slot `s` with `s mod period = u`.
    Vector { period: usize, len: usize },
}

/// A value of the map that a dense layer reads: ciphertext, slot, index of the value in the
/// flattened (C, H, W) map (or its channel, when a global pooling is folded in).
pub(super) struct Feature {
    pub ct: usize,
    pub slot: usize,
    pub index: usize,
}

impl Layout {
    /// Number of ciphertexts.
    pub fn count(&self) -> usize {
        match self {
            Layout::Planes { chans, .. } => chans.len(),
            Layout::Vector { .. } => 1,
        }
    }

    /// The channel (or vector index) whose value slot `slot` of ciphertext `ct` holds.
    pub fn channel_at(&self, ct: usize, slot: usize) -> Option<usize> {
        match self {
            Layout::Planes { block, chans, .. } => chans[ct][slot / block],
            Layout::Vector { period, len } => Some(slot % period).filter(|u| u < len),
        }
    }

    /// Every value once (the first copy of a repeated channel), for a dense layer. With
    /// `per_channel`, a value's index is its channel (a global pooling folded into the layer).
    pub fn features(&self, per_channel: bool) -> Vec<Feature> {
        match self {
            Layout::Planes { grid, block, chans } => {
                let mut seen = std::collections::BTreeSet::new();
                let mut out = Vec::new();
                for (ct, blocks) in chans.iter().enumerate() {
                    for (b, c) in blocks.iter().enumerate() {
                        let Some(c) = *c else { continue };
                        if !seen.insert(c) {
                            continue;
                        }
                        for y in 0..grid.h {
                            for x in 0..grid.w {
                                let index = if per_channel {
                                    c
                                } else {
                                    (c * grid.h + y) * grid.w + x
                                };
                                out.push(Feature {
                                    ct,
                                    slot: b * block + grid.slot(y, x),
                                    index,
                                });
                            }
                        }
                    }
                }
                out
            }
            Layout::Vector { len, .. } => (0..*len)
                .map(|u| Feature {
                    ct: 0,
                    slot: u,
                    index: u,
                })
                .collect(),
        }
    }
}

/// The client's side of the input: how the image is laid out.
#[derive(Clone, Debug)]
pub(super) struct Input {
    pub layout: Layout,
    /// The network's first convolution as a 1×1 convolution over the input's im2col
    /// channels, if the network starts with one.
    pub first_conv: Option<Conv>,
}

/// The network's first layer if it is a convolution.
fn first_conv(net: &Network) -> Option<&Conv> {
    match net.layers.first().map(|l| &l.kind) {
        Some(LayerKind::Conv(c)) => Some(c),
        _ => None,
    }
}

/// Input channels of one image: the image's, or its im2col channels (one per channel and
/// kernel offset) when the network starts with a convolution.
fn input_channels(net: &Network) -> usize {
    net.input.c * first_conv(net).map_or(1, |c| c.kh * c.kw)
}

/// The input layout of `net` with `slots` slots, or why it does not fit.
///
/// Each input channel is in its own ciphertext, repeated in every block, so that every output
/// block of the first layer finds it in place. A first convolution is done by the client's
/// layout as far as rotations go (im2col): channel (i, ky, kx) holds, at output position
/// (oy, ox), the input pixel that kernel offset (ky, kx) reads there, so the convolution is a
/// 1×1 convolution over those channels, needs no rotation, and its output is compact even
/// with a stride. (Packing several such channels per ciphertext saves encryptions but costs
/// block rotations and output capacity; measured on the MNIST network it was slower both in
/// latency and in images per second.)
pub(super) fn input(net: &Network, slots: usize) -> Result<Input, String> {
    let first = first_conv(net);
    let (h, w) = match first {
        Some(_) => {
            let out = net.shapes[0];
            (out.h, out.w)
        }
        None => (net.input.h, net.input.w),
    };
    let grid = Grid {
        h,
        w,
        row: w,
        col: 1,
    };
    let block = grid.span();
    if block > slots {
        return Err(format!(
            "a {h}×{w} plane needs {block} slots, more than {slots}"
        ));
    }
    let chans = (0..input_channels(net))
        .map(|c| vec![Some(c); slots / block])
        .collect();
    Ok(Input {
        layout: Layout::Planes { grid, block, chans },
        first_conv: first.map(im2col),
    })
}

impl Input {
    /// The slot vectors of one preprocessed image (C×H×W, row-major).
    pub fn vectors(&self, net: &Network, slots: usize, image: &[f64]) -> Vec<Vec<f64>> {
        let Layout::Planes { grid, block, chans } = &self.layout else {
            unreachable!("inputs are planes")
        };
        let (s, first) = (net.input, first_conv(net));
        // the pixel of channel c at plane position (y, x)
        let pixel = |c: usize, y: usize, x: usize| -> f64 {
            let Some(conv) = first else {
                return image[(c * s.h + y) * s.w + x];
            };
            let (i, k) = (c / (conv.kh * conv.kw), c % (conv.kh * conv.kw));
            let iy = (y * conv.stride + k / conv.kw) as isize - conv.padding as isize;
            let ix = (x * conv.stride + k % conv.kw) as isize - conv.padding as isize;
            if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                0.0
            } else {
                image[(i * s.h + iy as usize) * s.w + ix as usize]
            }
        };
        chans
            .iter()
            .map(|blocks| {
                let mut v = vec![0.0; slots];
                for (b, c) in blocks.iter().enumerate() {
                    let Some(c) = *c else { continue };
                    for y in 0..grid.h {
                        for x in 0..grid.w {
                            v[b * block + grid.slot(y, x)] = pixel(c, y, x);
                        }
                    }
                }
                v
            })
            .collect()
    }
}

/// `c` as a 1×1 convolution over the im2col channels `i·kh·kw + ky·kw + kx` (the weights
/// are the same numbers, in the order the channels are numbered).
fn im2col(c: &Conv) -> Conv {
    Conv {
        oc: c.oc,
        ic: c.ic * c.kh * c.kw,
        kh: 1,
        kw: 1,
        stride: 1,
        padding: 0,
        weight: c.weight.clone(),
        bias: c.bias.clone(),
    }
}
