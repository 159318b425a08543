//! Where `channel-fast` keeps a feature map: channel planes placed in the slots of its
//! ciphertexts (at block starts, or multiplexed into the stride gaps of other planes), or,
//! after a dense layer, one ciphertext whose slots repeat the values with a period. Also the
//! client's input layout: the image's phases (a first convolution's kernel offsets then come
//! from rotations on the server) or, where that is not fewer ciphertexts, im2col channels.

use super::super::grid::Grid;
use super::InputForm;
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
    /// What each input ciphertext holds.
    pub form: Form,
    /// The network's first convolution as the input form reads it (a 1×1 convolution over
    /// im2col channels, or a stride-1 convolution over phase planes), if it starts with one.
    pub first_conv: Option<Conv>,
}

/// What the client puts in the input ciphertexts, one channel each, repeated in every block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// The image's channels (the network does not start with a convolution).
    Image,
    /// One channel per input channel and kernel offset of the first convolution: the
    /// convolution needs no rotation, but the client encrypts kh·kw ciphertexts per channel.
    Im2col,
    /// The stride² phases of each input channel (every stride-th row and column from an
    /// offset; for stride 1 the channel itself): the client encrypts stride² ciphertexts per
    /// channel, and the first convolution becomes a stride-1 convolution over them whose
    /// kernel offsets are shared rotations on the server.
    Phases,
}

/// The network's first layer if it is a convolution.
fn first_conv(net: &Network) -> Option<&Conv> {
    match net.layers.first().map(|l| &l.kind) {
        Some(LayerKind::Conv(c)) => Some(c),
        _ => None,
    }
}

/// The input layout of `net` with `slots` slots, or why it does not fit.
///
/// Each input channel is in its own ciphertext, repeated in every block, so that every output
/// block of the first layer finds it in place. A network that starts with a convolution gets
/// its input in phases (few ciphertexts, the kernel offsets by rotation on the server) when
/// `prefer` asks for them, that means fewer ciphertexts than im2col and a phase plane fits in
/// the slots; otherwise in im2col form (one ciphertext per kernel offset, no rotation, a
/// compact output even with a stride). `hejob plan` prints the client's and the server's time
/// under each packing.
pub(super) fn input(net: &Network, slots: usize, prefer: InputForm) -> Result<Input, String> {
    let Some(first) = first_conv(net) else {
        let (h, w) = (net.input.h, net.input.w);
        return planes(net.input.c, Grid::compact(h, w), slots).map(|layout| Input {
            layout,
            form: Form::Image,
            first_conv: None,
        });
    };
    let out = net.shapes[0];
    let phased = phases(first, (net.input.h, net.input.w), (out.h, out.w));
    if prefer == InputForm::Phases && phased.0.ic < first.ic * first.kh * first.kw {
        if let Ok(layout) = planes(phased.0.ic, phased.1, slots) {
            return Ok(Input {
                layout,
                form: Form::Phases,
                first_conv: Some(phased.0),
            });
        }
    }
    let layout = planes(
        first.ic * first.kh * first.kw,
        Grid::compact(out.h, out.w),
        slots,
    )?;
    Ok(Input {
        layout,
        form: Form::Im2col,
        first_conv: Some(im2col(first)),
    })
}

/// `channels` input planes on `grid`, each repeated in every block of the grid's span.
fn planes(channels: usize, grid: Grid, slots: usize) -> Result<Layout, String> {
    let block = grid.span();
    if block > slots {
        return Err(format!(
            "a {}×{} plane needs {block} slots, more than {slots}",
            grid.h, grid.w
        ));
    }
    let cts = (0..channels)
        .map(|channel| {
            (0..slots / block)
                .map(|b| Place {
                    channel,
                    base: b * block,
                })
                .collect()
        })
        .collect();
    Ok(Layout::Planes(Planes::new(
        grid,
        block,
        (grid.row, grid.col),
        slots,
        cts,
    )))
}

impl Input {
    /// The slot vectors of one preprocessed image (C×H×W, row-major).
    pub fn vectors(&self, net: &Network, slots: usize, image: &[f64]) -> Vec<Vec<f64>> {
        let Layout::Planes(planes) = &self.layout else {
            unreachable!("inputs are planes")
        };
        let (s, first) = (net.input, first_conv(net));
        let at = |i: usize, iy: isize, ix: isize| -> f64 {
            if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                0.0
            } else {
                image[(i * s.h + iy as usize) * s.w + ix as usize]
            }
        };
        // the value of input channel c at plane position (y, x)
        let pixel = |c: usize, y: usize, x: usize| -> f64 {
            let (y, x) = (y as isize, x as isize);
            match (self.form, first) {
                (Form::Im2col, Some(conv)) => {
                    let (i, k) = (c / (conv.kh * conv.kw), c % (conv.kh * conv.kw));
                    let (stride, pad) = (conv.stride as isize, conv.padding as isize);
                    let ky = (k / conv.kw) as isize;
                    let kx = (k % conv.kw) as isize;
                    at(i, y * stride + ky - pad, x * stride + kx - pad)
                }
                (Form::Phases, Some(conv)) => {
                    let s2 = conv.stride * conv.stride;
                    let (i, a, b) = (c / s2, (c % s2) / conv.stride, c % conv.stride);
                    let stride = conv.stride as isize;
                    at(i, y * stride + a as isize, x * stride + b as isize)
                }
                _ => at(c, y, x),
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

/// `c` (stride s, padding p) over an `h × w` input with an `out` output, as a stride-1
/// convolution over the input's phases, and the phase planes' grid.
///
/// Phase (a, b) of input channel i is channel `(i·s + a)·s + b`, holding input pixel
/// (s·y + a, s·x + b) at (y, x). Kernel row ky reads input row s·oy + ky − p, that is phase
/// row a = (ky − p) mod s at row oy + ⌊(ky − p)/s⌋: kernel row ⌊(ky − p)/s⌋ + P of a
/// convolution with padding P = ⌈p/s⌉ (columns alike). Kernel offsets that fall on no
/// original offset get weight zero. The grid holds the phase planes and the output; what lies
/// beyond a phase's pixels is zero, as padding would be.
fn phases(c: &Conv, (h, w): (usize, usize), out: (usize, usize)) -> (Conv, Grid) {
    let (s, p) = (c.stride as isize, c.padding as isize);
    let pad = (p + s - 1) / s;
    let kernel = |k: usize| ((k as isize - 1 - p).div_euclid(s) + pad + 1) as usize;
    let (kh, kw) = (kernel(c.kh), kernel(c.kw));
    let ic = c.ic * c.stride * c.stride;
    let mut phased = Conv {
        oc: c.oc,
        ic,
        kh,
        kw,
        stride: 1,
        padding: pad as usize,
        weight: vec![0.0; c.oc * ic * kh * kw],
        bias: c.bias.clone(),
    };
    for o in 0..c.oc {
        for i in 0..c.ic {
            for ky in 0..c.kh {
                for kx in 0..c.kw {
                    let (u, v) = (ky as isize - p, kx as isize - p);
                    let (a, qy) = (u.rem_euclid(s) as usize, (u.div_euclid(s) + pad) as usize);
                    let (b, qx) = (v.rem_euclid(s) as usize, (v.div_euclid(s) + pad) as usize);
                    let channel = (i * c.stride + a) * c.stride + b;
                    let at = phased.at(o, channel, qy, qx);
                    phased.weight[at] = c.weight[c.at(o, i, ky, kx)];
                }
            }
        }
    }
    let side = |n: usize, o: usize| n.div_ceil(c.stride).max(o);
    (phased, Grid::compact(side(h, out.0), side(w, out.1)))
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

    /// A first convolution evaluated the way the server does on the client's phase planes
    /// (a stride-1 convolution, zero beyond the grid) equals the convolution on the image,
    /// for strides 1 to 3 with and without padding, and the phases are fewer ciphertexts.
    #[test]
    fn phase_planes_and_their_convolution_equal_the_first_convolution() {
        use crate::data::Shape;
        use crate::model::Layer;
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        // (channels, height, width, kernel, stride, padding)
        let cases = [
            (1, 28, 28, 5, 2, 0),
            (3, 32, 32, 3, 1, 1),
            (2, 11, 9, 3, 2, 1),
            (1, 13, 13, 4, 3, 2),
            (2, 8, 10, 5, 2, 2),
        ];
        for (ic, h, w, k, stride, padding) in cases {
            let oc = 3;
            let c = Conv::square(
                (oc, ic, k),
                (stride, padding),
                (0..oc * ic * k * k).map(|_| next()).collect(),
                (0..oc).map(|_| next()).collect(),
            );
            let layers = [Layer::new("conv", LayerKind::Conv(c.clone()))];
            let net = Network::from_layers(Shape::new(ic, h, w), &layers).unwrap();
            let image: Vec<f64> = (0..ic * h * w).map(|_| next()).collect();
            let slots = 8192;
            let front = input(&net, slots, InputForm::Phases).unwrap();
            assert_eq!(front.form, Form::Phases, "case {:?}", (ic, h, w, k, stride));
            assert_eq!(front.layout.count(), ic * stride * stride);
            let Layout::Planes(planes) = &front.layout else {
                unreachable!()
            };
            let (g, phased) = (planes.grid, front.first_conv.as_ref().unwrap());
            assert_eq!((phased.stride, phased.ic), (1, ic * stride * stride));
            let vectors = front.vectors(&net, slots, &image);
            let out = net.shapes[0];
            for o in 0..oc {
                for oy in 0..out.h {
                    for ox in 0..out.w {
                        let mut direct = c.bias[o];
                        for i in 0..ic {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let y = (oy * stride + ky) as isize - padding as isize;
                                    let x = (ox * stride + kx) as isize - padding as isize;
                                    if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                                        direct += c.weight[c.at(o, i, ky, kx)]
                                            * image[(i * h + y as usize) * w + x as usize];
                                    }
                                }
                            }
                        }
                        let mut served = phased.bias[o];
                        let pad = phased.padding as isize;
                        for (ch, v) in vectors.iter().enumerate() {
                            for qy in 0..phased.kh {
                                for qx in 0..phased.kw {
                                    let y = (oy + qy) as isize - pad;
                                    let x = (ox + qx) as isize - pad;
                                    if y >= 0 && x >= 0 && (y as usize) < g.h && (x as usize) < g.w
                                    {
                                        served += phased.weight[phased.at(o, ch, qy, qx)]
                                            * v[g.slot(y as usize, x as usize)];
                                    }
                                }
                            }
                        }
                        assert!(
                            (direct - served).abs() < 1e-12,
                            "case {:?}, output ({o}, {oy}, {ox}): {direct} vs {served}",
                            (ic, h, w, k, stride, padding)
                        );
                    }
                }
            }
        }
    }

    /// A 2×2 kernel of stride 2 reads four phases, as many ciphertexts as im2col: the client
    /// gets im2col, which needs no rotation, whichever form is preferred.
    #[test]
    fn im2col_where_phases_are_not_fewer() {
        use crate::data::Shape;
        use crate::model::Layer;
        let c = Conv::square((2, 1, 2), (2, 0), vec![0.5; 8], vec![0.0; 2]);
        let layers = [Layer::new("conv", LayerKind::Conv(c))];
        let net = Network::from_layers(Shape::new(1, 8, 8), &layers).unwrap();
        for prefer in InputForm::ALL {
            let front = input(&net, 4096, prefer).unwrap();
            assert_eq!(front.form, Form::Im2col);
            assert_eq!(front.layout.count(), 4);
            assert_eq!(front.first_conv.unwrap().kh, 1);
        }
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
