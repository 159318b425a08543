//! The paper's channel-wise packing, faithfully: one image, one ciphertext per channel holding
//! its H×W plane. Convolution is a sum over kernel offsets of rotation × plaintext weight, with
//! stride kept in the slot layout (no data movement) and padding/validity masks folded into the
//! weight plaintexts. Before a fully connected layer all channels are packed into one
//! ciphertext (one rotation per channel), and each output is one plaintext product followed by
//! a rotate-and-sum over every slot (log2(slots) rotations).

use std::sync::Arc;

use super::grid::{sum_progression, Grid};
use super::{affine, dense_flat, Packing, StageLog};
use crate::he::activation;
use crate::he::exec::{Backend, Exec};
use crate::he::parallel::{par_each, par_map};
use crate::he::{HeError, Network};
use crate::model::{Activation, Layer, LayerKind};

/// The channel-wise packing of the paper.
pub struct ChannelWise;

/// A feature map during evaluation.
enum Map<B: Backend> {
    /// One ciphertext per channel on `grid`. `clean`: every slot off the grid holds zero.
    Grid {
        grid: Grid,
        cts: Vec<B::Ct>,
        clean: bool,
    },
    /// One ciphertext per value, the value replicated in every slot (after a dense layer).
    Flat(Vec<B::Ct>),
}

/// The layouts each layer sees (computed without ciphertexts, for `fits`).
fn grids(net: &Network) -> Vec<Option<Grid>> {
    let mut grid = Some(Grid {
        h: net.input.h,
        w: net.input.w,
        row: net.input.w,
        col: 1,
    });
    let mut out = vec![grid];
    for (i, layer) in net.layers.iter().enumerate() {
        let shape = net.shapes[i];
        grid = match (&layer.kind, grid) {
            (LayerKind::Conv(c), Some(g)) => Some(Grid {
                h: shape.h,
                w: shape.w,
                row: g.row * c.stride,
                col: g.col * c.stride,
            }),
            (LayerKind::AvgPool(p), Some(g)) => Some(Grid {
                h: shape.h,
                w: shape.w,
                row: g.row * p.stride,
                col: g.col * p.stride,
            }),
            (LayerKind::GlobalAvgPool { .. }, Some(_)) => Some(Grid {
                h: 1,
                w: 1,
                row: 1,
                col: 1,
            }),
            (LayerKind::Dense(_), _) => None,
            (_, g) => g,
        };
        out.push(grid);
    }
    out
}

impl Packing for ChannelWise {
    fn name(&self) -> &'static str {
        "channel"
    }

    fn images_per_run(&self, _slots: usize) -> usize {
        1
    }

    fn fits(&self, net: &Network, slots: usize) -> Result<(), String> {
        let layout = grids(net);
        for (i, g) in layout.iter().enumerate() {
            if let Some(g) = g {
                if g.span() > slots {
                    return Err(format!(
                        "the {}×{} map before layer {i} spans {} slots, more than {slots}",
                        g.h,
                        g.w,
                        g.span()
                    ));
                }
            }
        }
        // every channel packed before a dense layer must find room
        for (i, layer) in net.layers.iter().enumerate() {
            if let (LayerKind::Dense(_), Some(g)) = (&layer.kind, layout[i]) {
                // a flatten keeps the grid: its c·h·w values are c channels of h·w
                pack_shifts(&g, net.shape_in(i).len() / (g.h * g.w), slots)?;
            }
        }
        Ok(())
    }

    fn noise_gain(&self, net: &Network, slots: usize) -> f64 {
        let grids = grids(net);
        let summed = net
            .layers
            .iter()
            .enumerate()
            .any(|(i, l)| matches!(l.kind, LayerKind::Dense(_)) && grids[i].is_some());
        if summed {
            slots as f64
        } else {
            1.0
        }
    }

    fn input_count(&self, net: &Network, _slots: usize) -> usize {
        net.input.c
    }

    fn input_vectors(&self, net: &Network, slots: usize, images: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let s = net.input;
        let grid = grids(net)[0].expect("input grid");
        images
            .iter()
            .flat_map(|img| {
                (0..s.c).map(move |c| {
                    let mut v = vec![0.0; slots.min(grid.span())];
                    for y in 0..s.h {
                        for x in 0..s.w {
                            v[grid.slot(y, x)] = img[(c * s.h + y) * s.w + x];
                        }
                    }
                    v
                })
            })
            .collect()
    }

    fn evaluate<B: Backend>(
        &self,
        exec: &Exec<B>,
        net: &Network,
        input: Vec<B::Ct>,
        stages: &mut StageLog,
    ) -> Result<Vec<B::Ct>, HeError> {
        let layout = grids(net);
        let mut map = Map::Grid {
            grid: layout[0].expect("input grid"),
            cts: input,
            clean: true,
        };
        for (i, layer) in net.layers.iter().enumerate() {
            let ctx = Step {
                exec,
                layer,
                index: i,
            };
            map = ctx.apply(map, layout[i + 1])?;
            stages.done(exec, &layer.name);
        }
        Ok(match map {
            Map::Grid { cts, .. } | Map::Flat(cts) => cts,
        })
    }

    fn logits(&self, net: &Network, outputs: &[Vec<f64>], images: usize) -> Vec<Vec<f64>> {
        // Every output ciphertext holds one logit in slot 0 (a 1×1 grid or a replicated value).
        debug_assert_eq!(outputs.len(), net.outputs());
        (0..images)
            .map(|_| outputs.iter().map(|v| v[0]).collect())
            .collect()
    }
}

/// One layer's evaluation context.
struct Step<'a, 'e, B: Backend> {
    exec: &'a Exec<'e, B>,
    layer: &'a Layer,
    index: usize,
}

impl<B: Backend> Step<'_, '_, B> {
    fn err(&self, reason: String) -> HeError {
        HeError::Layer {
            index: self.index,
            name: self.layer.name.clone(),
            reason,
        }
    }

    fn apply(&self, map: Map<B>, next: Option<Grid>) -> Result<Map<B>, HeError> {
        let exec = self.exec;
        let slots = exec.slots();
        match (&self.layer.kind, map) {
            (LayerKind::Conv(c), Map::Grid { grid, cts, .. }) => {
                let out = next.expect("conv output grid");
                let level = exec.level(&cts[0]);
                let p = c.padding as isize;
                // rotated[i][ky·kw + kx]: input channel i moved by the kernel offset
                let offsets: Vec<(usize, usize)> = (0..c.kh)
                    .flat_map(|ky| (0..c.kw).map(move |kx| (ky, kx)))
                    .collect();
                let rotated = par_map(c.ic * offsets.len(), |j| {
                    let (i, (ky, kx)) = (j / offsets.len(), offsets[j % offsets.len()]);
                    let step = (ky as isize - p) * grid.row as isize
                        + (kx as isize - p) * grid.col as isize;
                    exec.rotate(&cts[i], step as i64)
                })?;
                // mask of output positions whose input position (ky, kx) is inside the map
                let masks: Vec<Vec<f64>> = offsets
                    .iter()
                    .map(|&(ky, kx)| {
                        let mut m = vec![0.0; slots.min(out.span())];
                        for oy in 0..out.h {
                            for ox in 0..out.w {
                                let y = (oy * c.stride + ky) as isize - p;
                                let x = (ox * c.stride + kx) as isize - p;
                                if y >= 0 && y < grid.h as isize && x >= 0 && x < grid.w as isize {
                                    m[out.slot(oy, ox)] = 1.0;
                                }
                            }
                        }
                        m
                    })
                    .collect();
                let scale = exec.scale(level);
                let cts = par_map(c.oc, |o| {
                    let mut acc = None;
                    for i in 0..c.ic {
                        for (k, &(ky, kx)) in offsets.iter().enumerate() {
                            let w = c.weight[c.at(o, i, ky, kx)];
                            if w == 0.0 {
                                exec.skip_zero();
                                continue;
                            }
                            let values: Vec<f64> = masks[k].iter().map(|m| m * w).collect();
                            let pt = exec.encode(&values, level, scale)?;
                            exec.multiply_plain_accumulate(
                                &mut acc,
                                &rotated[i * offsets.len() + k],
                                &pt,
                            )?;
                        }
                    }
                    let mut acc = acc.ok_or_else(|| self.zero_channel(o))?;
                    if c.bias[o] != 0.0 {
                        let b = exec.encode(&out.mask(slots, c.bias[o]), level, scale * scale)?;
                        exec.add_plain_assign(&mut acc, &b)?;
                    }
                    exec.rescale(&mut acc)?;
                    Ok(acc)
                })?;
                Ok(Map::Grid {
                    grid: out,
                    cts,
                    clean: true,
                })
            }
            (LayerKind::BatchNorm(bn), map) => {
                let (grid, cts, clean) = split(map);
                let cts = par_each(cts, |ct, c| {
                    let (m, off) = bn.affine(c);
                    affine(exec, ct, m, off, &|v, level, scale| match grid {
                        Some(g) => exec.encode(&g.mask(slots, v), level, scale),
                        None => exec.encode_scalar(v, level, scale),
                    })
                    .map_err(|e| e.at_layer(self.index, &self.layer.name))
                })?;
                Ok(join(grid, cts, clean))
            }
            (LayerKind::Activation(Activation::Poly(coeffs), _), map) => {
                let coeffs = activation::trimmed(coeffs).map_err(|e| self.err(e))?;
                let (grid, cts, clean) = split(map);
                let cts = par_each(cts, |ct, _| {
                    activation::evaluate(exec, ct, coeffs, &|c, level, scale| {
                        match grid {
                            Some(g) => exec.encode(&g.mask(slots, c), level, scale),
                            None => exec.encode_scalar(c, level, scale),
                        }
                        .map(Arc::new)
                    })
                })?;
                Ok(join(grid, cts, clean))
            }
            (LayerKind::AvgPool(p), Map::Grid { grid, cts, clean }) => {
                let out = next.expect("pool output grid");
                let cts = par_map(cts.len(), |c| {
                    let mut acc: Option<B::Ct> = None;
                    for ky in 0..p.kernel {
                        for kx in 0..p.kernel {
                            let r = exec.rotate(&cts[c], (grid.slot(ky, kx)) as i64)?;
                            exec.accumulate(&mut acc, r)?;
                        }
                    }
                    let acc = acc.expect("kernel is at least 1×1");
                    if p.scale == 1.0 {
                        Ok(acc)
                    } else {
                        self.masked_scale(acc, &out, p.scale)
                    }
                })?;
                Ok(Map::Grid {
                    grid: out,
                    cts,
                    clean: clean && p.scale != 1.0,
                })
            }
            (LayerKind::GlobalAvgPool { scale }, Map::Grid { grid, cts, .. }) => {
                let k = scale.unwrap_or(1.0 / (grid.h * grid.w) as f64);
                let one = next.expect("gap output grid");
                let cts = par_map(cts.len(), |c| {
                    let rows = sum_progression(exec, exec.copy(&cts[c])?, grid.h, grid.row)?;
                    let all = sum_progression(exec, rows, grid.w, grid.col)?;
                    self.masked_scale(all, &one, k)
                })?;
                Ok(Map::Grid {
                    grid: one,
                    cts,
                    clean: true,
                })
            }
            (LayerKind::Flatten, map) => Ok(map),
            (LayerKind::Dense(d), Map::Grid { grid, cts, clean }) => {
                let level = exec.level(&cts[0]);
                let cts = if clean {
                    cts
                } else {
                    par_map(cts.len(), |c| {
                        self.masked_scale(exec.copy(&cts[c])?, &grid, 1.0)
                    })?
                };
                let level = if clean { level } else { level - 1 };
                let shifts = pack_shifts(&grid, cts.len(), slots).map_err(|e| self.err(e))?;
                let mut packed: Option<B::Ct> = None;
                for (c, ct) in cts.iter().enumerate() {
                    let r = exec.rotate(ct, -(shifts[c] as i64))?;
                    exec.accumulate(&mut packed, r)?;
                }
                let packed = packed.ok_or_else(|| self.err("no channels to pack".into()))?;
                let plane = grid.h * grid.w;
                let scale = exec.scale(level);
                let outs = par_map(d.out, |u| {
                    let mut row = vec![0.0; slots];
                    for (c, shift) in shifts.iter().enumerate() {
                        for y in 0..grid.h {
                            for x in 0..grid.w {
                                row[shift + grid.slot(y, x)] =
                                    d.weight[u * d.inp + c * plane + y * grid.w + x];
                            }
                        }
                    }
                    let pt = exec.encode(&row, level, scale)?;
                    let mut acc = exec
                        .multiply_plain(&packed, &pt)?
                        .ok_or_else(|| self.err(format!("output {u} has all-zero weights")))?;
                    exec.rescale(&mut acc)?;
                    let mut step = slots / 2;
                    while step >= 1 {
                        let r = exec.rotate(&acc, step as i64)?;
                        exec.add_assign(&mut acc, &r)?;
                        step /= 2;
                    }
                    if d.bias[u] != 0.0 {
                        let l = exec.level(&acc);
                        exec.add_plain_assign(
                            &mut acc,
                            &exec.encode_scalar(d.bias[u], l, exec.scale(l))?,
                        )?;
                    }
                    Ok(acc)
                })?;
                Ok(Map::Flat(outs))
            }
            (LayerKind::Dense(d), Map::Flat(cts)) => {
                Ok(Map::Flat(dense_flat(exec, d, cts, |u| {
                    self.err(format!("output {u} has all-zero weights"))
                })?))
            }
            (kind, _) => Err(self.err(format!(
                "a {} layer after a dense layer is not supported by the channel packing",
                match kind {
                    LayerKind::Conv(_) => "conv",
                    LayerKind::AvgPool(_) => "avgpool",
                    _ => "global_avgpool",
                }
            ))),
        }
    }

    fn zero_channel(&self, o: usize) -> HeError {
        self.err(format!(
            "output channel {o} has only zero weights; prune it before encrypted evaluation"
        ))
    }

    /// Multiplies by `k` on `grid`'s positions and 0 elsewhere (one level).
    fn masked_scale(&self, ct: B::Ct, grid: &Grid, k: f64) -> Result<B::Ct, HeError> {
        let exec = self.exec;
        let level = exec.level(&ct);
        let pt = exec.encode(&grid.mask(exec.slots(), k), level, exec.scale(level))?;
        let mut y = exec
            .multiply_plain(&ct, &pt)?
            .ok_or_else(|| self.err("pooling scale is zero".into()))?;
        exec.rescale(&mut y)?;
        Ok(y)
    }
}

fn split<B: Backend>(map: Map<B>) -> (Option<Grid>, Vec<B::Ct>, bool) {
    match map {
        Map::Grid { grid, cts, clean } => (Some(grid), cts, clean),
        Map::Flat(cts) => (None, cts, true),
    }
}

fn join<B: Backend>(grid: Option<Grid>, cts: Vec<B::Ct>, clean: bool) -> Map<B> {
    match grid {
        Some(grid) => Map::Grid { grid, cts, clean },
        None => Map::Flat(cts),
    }
}

/// Slot offsets that place `channels` copies of `grid`'s positions without overlap (greedy,
/// smallest offsets first), so that one ciphertext holds every channel.
fn pack_shifts(grid: &Grid, channels: usize, slots: usize) -> Result<Vec<usize>, String> {
    let positions: Vec<usize> = (0..grid.h)
        .flat_map(|y| (0..grid.w).map(move |x| grid.slot(y, x)))
        .collect();
    let span = grid.span();
    let mut used = vec![false; slots];
    let mut shifts = Vec::with_capacity(channels);
    let mut d = 0;
    while shifts.len() < channels {
        if d + span > slots {
            return Err(format!(
                "{channels} channels of {} values do not fit in {slots} slots",
                positions.len()
            ));
        }
        if positions.iter().all(|p| !used[p + d]) {
            positions.iter().for_each(|p| used[p + d] = true);
            shifts.push(d);
        }
        d += 1;
    }
    Ok(shifts)
}
