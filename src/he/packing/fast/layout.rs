//! Where `channel-fast` keeps a feature map: channel planes placed in the slots of its
//! ciphertexts (at block starts, or multiplexed into the stride gaps of other planes), or,
//! after a dense layer, one ciphertext whose slots repeat the values with a period. Also the
//! client's input layout, in which a first convolution's kernel offsets are laid out by the
//! client (im2col).

use super::super::grid::Grid;
use crate::he::Network;
use crate::model::{Conv, LayerKind};

/// One channel's plane in a ciphertext: value `(y, x)` at slot `base + grid.slot(y, x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Place {
    pub channel: usize,
    pub base: usize,
}

/// Channel planes in ciphertexts of `slots` slots, all on one grid.
#[derive(Clone, Debug)]
pub(super) struct Planes {
    pub grid: Grid,
    /// Slots between the starts of neighbouring planes of the input; planes start at block
    /// starts, or at a sub-offset (a multiple of `fine`) inside a block.
    pub block: usize,
    /// The pitch (row, column) of the input's own compact grid.
    pub fine: (usize, usize),
    pub slots: usize,
    /// The planes of each ciphertext (a channel may appear in several).
    pub cts: Vec<Vec<Place>>,
    /// Per ciphertext, the slots that may hold something nonzero: the planes' values and what
    /// pooling spread around them. Every other slot holds zero (up to noise).
    pub support: Vec<Vec<bool>>,
}

/// A feature map's place in the slots of its ciphertexts.
#[derive(Clone, Debug)]
pub(super) enum Layout {
    Planes(Planes),
    /// One ciphertext; value `u < len` at every slot `s` with `s mod period = u`.
    Vector {
        period: usize,
        len: usize,
    },
}

/// A value of the map that a dense layer reads: ciphertext, slot, index of the value in the
/// flattened (C, H, W) map (or its channel, when a global pooling is folded in).
pub(super) struct Feature {
    pub ct: usize,
    pub slot: usize,
    pub index: usize,
}

impl Planes {
    /// Planes on `grid` whose support is exactly their values.
    pub fn new(
        grid: Grid,
        block: usize,
        fine: (usize, usize),
        slots: usize,
        cts: Vec<Vec<Place>>,
    ) -> Self {
        let mut planes = Self {
            grid,
            block,
            fine,
            slots,
            cts,
            support: Vec::new(),
        };
        planes.support = (0..planes.cts.len())
            .map(|t| planes.channels(t).iter().map(Option::is_some).collect())
            .collect();
        planes
    }

    /// The slots of a plane's values.
    pub fn slots_of(&self, base: usize) -> impl Iterator<Item = usize> + '_ {
        let g = self.grid;
        (0..g.h).flat_map(move |y| (0..g.w).map(move |x| (base + g.slot(y, x)) % self.slots))
    }

    /// The channel whose value each slot of ciphertext `t` holds (`None`: no value).
    pub fn channels(&self, t: usize) -> Vec<Option<usize>> {
        let mut v = vec![None; self.slots];
        for p in &self.cts[t] {
            for s in self.slots_of(p.base) {
                v[s] = Some(p.channel);
            }
        }
        v
    }

    /// Offsets inside a block at which a plane of `grid` interleaves with a plane at offset
    /// 0 without sharing a slot: multiples of the fine pitch below the grid's pitch, as long
    /// as the plane stays inside its block.
    pub fn sub_offsets(&self, grid: &Grid) -> Vec<usize> {
        let (fr, fc) = self.fine;
        let rows = if grid.h > 1 { grid.row / fr } else { 1 };
        let cols = if grid.w > 1 { grid.col / fc } else { 1 };
        (0..rows)
            .flat_map(|a| (0..cols).map(move |b| a * fr + b * fc))
            .filter(|s| s + grid.span() <= self.block)
            .collect()
    }

    /// The same planes after a `kernel`×`kernel` window sum with `stride` (by rotations):
    /// values at the windows' first slots on the coarser grid `(h, w)`, the support spread
    /// over every slot a window reaches back from.
    pub fn pooled(&self, kernel: usize, stride: usize, (h, w): (usize, usize)) -> Self {
        let g = self.grid;
        let offsets: Vec<usize> = (0..kernel)
            .flat_map(|a| (0..kernel).map(move |b| a * g.row + b * g.col))
            .collect();
        let n = self.slots;
        let support = self
            .support
            .iter()
            .map(|s| {
                (0..n)
                    .map(|p| offsets.iter().any(|o| s[(p + o) % n]))
                    .collect()
            })
            .collect();
        Self {
            grid: Grid {
                h,
                w,
                row: g.row * stride,
                col: g.col * stride,
            },
            support,
            ..self.clone()
        }
    }

    /// Groups of ciphertexts that can be added into one after each is shifted right by its
    /// offset (a sub-offset of the grid): no value of one lands where another may be nonzero.
    /// Greedy, in order; a group of one needs no work.
    pub fn merges(&self) -> Vec<Vec<(usize, usize)>> {
        let n = self.slots;
        let subs = self.sub_offsets(&self.grid);
        let values: Vec<Vec<bool>> = (0..self.cts.len())
            .map(|t| self.channels(t).iter().map(Option::is_some).collect())
            .collect();
        // per group: members, values and support so far
        struct Group {
            members: Vec<(usize, usize)>,
            values: Vec<bool>,
            support: Vec<bool>,
        }
        let mut groups: Vec<Group> = Vec::new();
        for (t, (vals, sup)) in values.iter().zip(&self.support).enumerate() {
            let fit = groups.iter().enumerate().find_map(|(g, group)| {
                subs.iter().find_map(|&s| {
                    let (v, u) = (shifted(vals, s), shifted(sup, s));
                    let clash =
                        (0..n).any(|p| (v[p] && group.support[p]) || (u[p] && group.values[p]));
                    (!clash).then_some((g, s, v, u))
                })
            });
            match fit {
                Some((g, s, v, u)) => {
                    let group = &mut groups[g];
                    group.members.push((t, s));
                    (0..n).for_each(|p| {
                        group.values[p] |= v[p];
                        group.support[p] |= u[p];
                    });
                }
                None => groups.push(Group {
                    members: vec![(t, 0)],
                    values: vals.clone(),
                    support: sup.clone(),
                }),
            }
        }
        groups.into_iter().map(|g| g.members).collect()
    }

    /// The layout after the ciphertexts of each group are shifted and added into one.
    pub fn merged(&self, groups: &[Vec<(usize, usize)>]) -> Self {
        let n = self.slots;
        let cts = groups
            .iter()
            .map(|g| {
                g.iter()
                    .flat_map(|&(t, s)| {
                        self.cts[t].iter().map(move |p| Place {
                            channel: p.channel,
                            base: (p.base + s) % n,
                        })
                    })
                    .collect()
            })
            .collect();
        let support = groups
            .iter()
            .map(|g| {
                let moved: Vec<Vec<bool>> = g
                    .iter()
                    .map(|&(t, s)| shifted(&self.support[t], s))
                    .collect();
                (0..n).map(|p| moved.iter().any(|m| m[p])).collect()
            })
            .collect();
        Self {
            cts,
            support,
            ..self.clone()
        }
    }
}

/// `v` moved right by `s` slots, cyclically.
fn shifted(v: &[bool], s: usize) -> Vec<bool> {
    let n = v.len();
    (0..n).map(|p| v[(p + n - s) % n]).collect()
}

impl Layout {
    /// Number of ciphertexts.
    pub fn count(&self) -> usize {
        match self {
            Layout::Planes(p) => p.cts.len(),
            Layout::Vector { .. } => 1,
        }
    }

    /// The channel (or vector index) whose value each slot of ciphertext `t` holds, among
    /// `slots` slots.
    pub fn channels(&self, t: usize, slots: usize) -> Vec<Option<usize>> {
        match self {
            Layout::Planes(p) => p.channels(t),
            Layout::Vector { period, len } => (0..slots)
                .map(|s| Some(s % period).filter(|u| u < len))
                .collect(),
        }
    }

    /// Every value once (the first copy of a repeated channel), for a dense layer. With
    /// `per_channel`, a value's index is its channel (a global pooling folded into the layer).
    pub fn features(&self, per_channel: bool) -> Vec<Feature> {
        match self {
            Layout::Planes(planes) => {
                let grid = planes.grid;
                let mut seen = std::collections::BTreeSet::new();
                let mut out = Vec::new();
                for (ct, places) in planes.cts.iter().enumerate() {
                    for p in places {
                        let c = p.channel;
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
                                    slot: (p.base + grid.slot(y, x)) % planes.slots,
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
    let cts = (0..input_channels(net))
        .map(|channel| {
            (0..slots / block)
                .map(|b| Place {
                    channel,
                    base: b * block,
                })
                .collect()
        })
        .collect();
    Ok(Input {
        layout: Layout::Planes(Planes::new(grid, block, (w, 1), slots, cts)),
        first_conv: first.map(im2col),
    })
}

impl Input {
    /// The slot vectors of one preprocessed image (C×H×W, row-major).
    pub fn vectors(&self, net: &Network, slots: usize, image: &[f64]) -> Vec<Vec<f64>> {
        let Layout::Planes(planes) = &self.layout else {
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
        (0..planes.cts.len())
            .map(|t| {
                let mut v = vec![0.0; slots];
                for p in &planes.cts[t] {
                    for y in 0..planes.grid.h {
                        for x in 0..planes.grid.w {
                            v[(p.base + planes.grid.slot(y, x)) % slots] = pixel(p.channel, y, x);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ciphertexts of eight 16×16 maps on the even rows and columns of 1,024-slot blocks
    /// (a convolution's output after one pooling), pooled once more: each map's values and
    /// junk sit on the even rows and columns only.
    fn pooled_twice() -> Planes {
        let grid = Grid {
            h: 16,
            w: 16,
            row: 64,
            col: 2,
        };
        let cts = (0..2)
            .map(|t| {
                (0..8)
                    .map(|b| Place {
                        channel: 8 * t + b,
                        base: 1024 * b,
                    })
                    .collect()
            })
            .collect();
        Planes::new(grid, 1024, (32, 1), 8192, cts).pooled(2, 2, (8, 8))
    }

    #[test]
    fn pooling_spreads_the_support_back_over_each_window() {
        let p = Planes::new(
            Grid {
                h: 4,
                w: 4,
                row: 4,
                col: 1,
            },
            16,
            (4, 1),
            32,
            vec![vec![Place {
                channel: 0,
                base: 16,
            }]],
        );
        let q = p.pooled(2, 2, (2, 2));
        // slot 15 reaches slot 16 (the plane's first value) through the column step
        let support: Vec<usize> = (0..32).filter(|&s| q.support[0][s]).collect();
        assert_eq!(support, (11..32).collect::<Vec<_>>());
        assert_eq!(q.grid.slot(1, 1), 10);
    }

    #[test]
    fn maps_with_stride_gaps_merge_without_touching_each_other() {
        let p = pooled_twice();
        let groups = p.merges();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0][0], (0, 0));
        assert!(p.sub_offsets(&p.grid).contains(&groups[0][1].1));
        assert_ne!(groups[0][1].1, 0);
        let m = p.merged(&groups);
        assert_eq!(m.cts.len(), 1);
        assert_eq!(m.cts[0].len(), 16);
        // every value slot of the merged map belongs to exactly one channel, and no slot of
        // a channel is in the support of the other ciphertext once shifted
        let mut owner = vec![None; 8192];
        for (t, s) in &groups[0] {
            for place in &p.cts[*t] {
                for slot in p.slots_of(place.base) {
                    let slot = (slot + s) % 8192;
                    assert_eq!(owner[slot], None);
                    owner[slot] = Some(*t);
                    for (u, v) in &groups[0] {
                        if u != t {
                            assert!(!p.support[*u][(slot + 8192 - v) % 8192]);
                        }
                    }
                }
            }
        }
        let merged = m.channels(0);
        assert!((0..8192).all(|s| merged[s].is_some() == owner[s].is_some()));
        assert_eq!(merged.iter().flatten().count(), 16 * 64);
    }

    #[test]
    fn dense_maps_do_not_merge() {
        let p = pooled_twice();
        let once = Planes::new(p.grid, 1024, (32, 1), 8192, p.cts.clone());
        // values only, no junk: the two maps interleave; with the junk of a pooling over
        // compact maps they cannot
        assert_eq!(once.merges().len(), 1);
        let compact = Planes::new(
            Grid {
                h: 32,
                w: 32,
                row: 32,
                col: 1,
            },
            1024,
            (32, 1),
            8192,
            p.cts.clone(),
        )
        .pooled(2, 2, (16, 16));
        assert_eq!(compact.merges().len(), 2);
    }
}
