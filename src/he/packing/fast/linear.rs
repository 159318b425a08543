//! The linear layers of `channel-fast` as sums of rotated inputs times stored weight
//! plaintexts, with baby-step/giant-step sharing: each distinct rotation of an input
//! ciphertext (baby step) is computed once for all outputs, and each output sums its products
//! per giant step before one rotation of the sum.

use std::collections::{BTreeMap, BTreeSet};

use super::super::grid::Grid;
use super::super::par_map;
use super::layout::{Feature, Layout};
use crate::he::exec::{Ct, Exec};
use crate::he::HeError;
use crate::model::{Conv, Dense};

type R<T> = Result<T, HeError>;

/// The values of one weight plaintext, made only when it is encoded.
type Values<'a> = Box<dyn Fn() -> Vec<f64> + Send + Sync + 'a>;

/// One plaintext product: input `input` rotated by `baby`, times a plaintext, summed into
/// output `output` before that sum is rotated by `giant`.
pub(super) struct Term<'a> {
    pub output: usize,
    pub input: usize,
    pub baby: i64,
    pub giant: i64,
    pub values: Values<'a>,
}

/// `out[o] = Σ_g rot(Σ_{terms (o, i, b, g)} rot(in[i], b) ⊙ P, g)`, unrescaled (scale S_ℓ²).
/// The plaintexts are stored under `(layer, term index)`, pre-rotated by −g.
pub(super) fn bsgs(
    exec: &Exec,
    layer: usize,
    inputs: &[Ct],
    terms: &[Term],
    outputs: usize,
) -> R<Vec<Option<Ct>>> {
    let slots = exec.slots() as i64;
    let norm = |s: i64| s.rem_euclid(slots);
    let level = exec.level(&inputs[0]);
    let scale = exec.scale(level);
    let babies: Vec<(usize, i64)> = terms
        .iter()
        .map(|t| (t.input, norm(t.baby)))
        .filter(|&(_, b)| b != 0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rotated = par_map(babies.len(), |k| {
        let (i, b) = babies[k];
        exec.rotate(&inputs[i], b)
    })?;
    let input = |i: usize, b: i64| -> &Ct {
        match babies.binary_search(&(i, norm(b))) {
            Ok(k) => &rotated[k],
            Err(_) => &inputs[i],
        }
    };
    let mut groups: BTreeMap<(usize, i64), Vec<usize>> = BTreeMap::new();
    for (k, t) in terms.iter().enumerate() {
        groups.entry((t.output, norm(t.giant))).or_default().push(k);
    }
    let groups: Vec<((usize, i64), Vec<usize>)> = groups.into_iter().collect();
    // each group's products in up to one chunk per thread, so that a few large groups still
    // keep every thread busy; the chunks' sums are added before the group's one rotation
    let threads = rayon::current_num_threads().max(1);
    let chunks: Vec<(usize, &[usize])> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, members))| {
            let size = members.len().div_ceil(threads).max(1);
            members.chunks(size).map(move |c| (g, c))
        })
        .collect();
    let partial = par_map(chunks.len(), |c| {
        let (g, members) = chunks[c];
        let giant = groups[g].0 .1;
        let mut acc = None;
        for &k in members {
            let t = &terms[k];
            let pt = exec.stored((layer, k as u64), level, scale, || {
                rotate_values(&(t.values)(), -giant)
            })?;
            if let Some(p) = exec.multiply_plain(input(t.input, t.baby), &pt)? {
                exec.accumulate(&mut acc, p)?;
            }
        }
        Ok(acc)
    })?;
    let mut per_group: Vec<Vec<Ct>> = (0..groups.len()).map(|_| Vec::new()).collect();
    for ((g, _), p) in chunks.iter().zip(partial) {
        per_group[*g].extend(p);
    }
    let sums = super::super::par_each(per_group, |parts, g| {
        let giant = groups[g].0 .1;
        let mut acc = None;
        for p in parts {
            exec.accumulate(&mut acc, p)?;
        }
        match acc {
            Some(a) if giant != 0 => Ok(Some(exec.rotate(&a, giant)?)),
            other => Ok(other),
        }
    })?;
    let mut out: Vec<Option<Ct>> = (0..outputs).map(|_| None).collect();
    for (((o, _), _), sum) in groups.iter().zip(sums) {
        if let Some(s) = sum {
            exec.accumulate(&mut out[*o], s)?;
        }
    }
    Ok(out)
}

/// `v` rotated left by `step`: slot t gets `v[t + step]`.
fn rotate_values(v: &[f64], step: i64) -> Vec<f64> {
    let n = v.len() as i64;
    (0..n)
        .map(|t| v[(t + step).rem_euclid(n) as usize])
        .collect()
}

/// A convolution planned on a planes layout: its products, the output layout, and the bias
/// plaintext of each output ciphertext.
pub(super) struct ConvPlan<'a> {
    pub terms: Vec<Term<'a>>,
    pub layout: Layout,
    pub bias: Vec<Option<Values<'a>>>,
    /// Products left out because all their weights are zero.
    pub zero: usize,
}

/// (output block, output channel, input channel) of a convolution product.
type Pair = (usize, usize, usize);

/// Plans convolution `c` with output size `oh × ow` on `layout` (a planes layout).
///
/// Output block j of output ciphertext J holds output channel o; it needs every input channel
/// i, which some input block b of some ciphertext I holds, b − j blocks away. A product
/// (J, I, step δ = (b − j)·block, kernel offset) covers all (j, i) pairs at that step at once,
/// and the input is rotated by δ + the kernel offset. Blocks whose channels are all within the
/// steps that block 0 needs are the output blocks, so that no further step arises.
pub(super) fn conv<'a>(
    layout: &Layout,
    c: &'a Conv,
    (oh, ow): (usize, usize),
    slots: usize,
) -> R<ConvPlan<'a>> {
    let Layout::Planes { grid, block, chans } = layout else {
        return Err(HeError::Internal("convolution on a vector".into()));
    };
    let (grid, block) = (*grid, *block);
    let per_ct = slots / block;
    // candidate (ciphertext, block) of each input channel
    let mut holders: Vec<Vec<(usize, usize)>> = vec![Vec::new(); c.ic];
    for (t, blocks) in chans.iter().enumerate() {
        for (b, ch) in blocks.iter().enumerate() {
            if let Some(ch) = *ch {
                holders[ch].push((t, b));
            }
        }
    }
    if let Some(i) = holders.iter().position(Vec::is_empty) {
        return Err(HeError::Internal(format!(
            "input channel {i} is in no block"
        )));
    }
    // the giant step that brings block b onto block j (blocks fill the ciphertext or not)
    let delta =
        |j: usize, b: usize| ((b as i64 - j as i64) * block as i64).rem_euclid(slots as i64);
    // the steps block 0 needs; each (j, i) then takes its smallest step among them
    let allowed: BTreeSet<(usize, i64)> = holders
        .iter()
        .map(|hs| {
            hs.iter()
                .map(|&(t, b)| (delta(0, b), t))
                .min()
                .expect("held")
        })
        .map(|(d, t)| (t, d))
        .collect();
    let pick = |j: usize, i: usize| {
        holders[i]
            .iter()
            .map(|&(t, b)| (delta(j, b), t))
            .filter(|&(d, t)| allowed.contains(&(t, d)))
            .min()
    };
    let usable: Vec<usize> = (0..per_ct)
        .filter(|&j| (0..c.ic).all(|i| pick(j, i).is_some()))
        .collect();
    let out_chans = assign(c.oc, &usable, per_ct);
    // pairs (block j, output o, input i) of each (J, I, δ)
    let mut pairs: BTreeMap<(usize, usize, i64), Vec<Pair>> = BTreeMap::new();
    for (jt, blocks) in out_chans.iter().enumerate() {
        for (j, o) in blocks.iter().enumerate() {
            let Some(o) = *o else { continue };
            for i in 0..c.ic {
                let (d, t) = pick(j, i).expect("usable block");
                pairs.entry((jt, t, d)).or_default().push((j, o, i));
            }
        }
    }
    let out = Grid {
        h: oh,
        w: ow,
        row: grid.row * c.stride,
        col: grid.col * c.stride,
    };
    let p = c.padding as isize;
    let offsets: Vec<(usize, usize)> = (0..c.kh)
        .flat_map(|ky| (0..c.kw).map(move |kx| (ky, kx)))
        .collect();
    // kernel row ky = q·r + m: the column offset and m·row go into the baby step (rotating
    // an input), the block step and q·r·row into the giant step (rotating an output's sum);
    // r from 1 (rows all giant) to kh (whole offsets baby), whichever needs fewest rotations
    let (row, col) = (grid.row as isize, grid.col as isize);
    let step = |r: usize, d: i64, ky: usize, kx: usize| {
        let (q, m) = ((ky / r * r) as isize, (ky % r) as isize);
        (
            (m - p) * row + (kx as isize - p) * col,
            d as isize + q * row,
        )
    };
    let mut zero = 0;
    let mut live = Vec::new();
    for (&(jt, t, d), ps) in &pairs {
        for &(ky, kx) in &offsets {
            if ps
                .iter()
                .all(|&(_, o, i)| c.weight[c.at(o, i, ky, kx)] == 0.0)
            {
                zero += 1;
                continue;
            }
            live.push((jt, t, d, ky, kx));
        }
    }
    let norm = |x: isize| x.rem_euclid(slots as isize);
    let rotations = |r: usize| {
        let (mut babies, mut giants) = (BTreeSet::new(), BTreeSet::new());
        for &(jt, t, d, ky, kx) in &live {
            let (b, g) = step(r, d, ky, kx);
            babies.insert((t, norm(b)));
            giants.insert((jt, norm(g)));
        }
        babies.iter().chain(&giants).filter(|x| x.1 != 0).count()
    };
    let r = (1..=c.kh).min_by_key(|&r| rotations(r)).unwrap_or(1);
    let terms = live
        .into_iter()
        .map(|(jt, t, d, ky, kx)| {
            let (baby, giant) = step(r, d, ky, kx);
            let ps = pairs[&(jt, t, d)].clone();
            let values: Values = Box::new(move || {
                let mut v = vec![0.0; slots];
                for &(j, o, i) in &ps {
                    let w = c.weight[c.at(o, i, ky, kx)];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let y = (oy * c.stride + ky) as isize - p;
                            let x = (ox * c.stride + kx) as isize - p;
                            if y >= 0 && y < grid.h as isize && x >= 0 && x < grid.w as isize {
                                v[j * block + out.slot(oy, ox)] = w;
                            }
                        }
                    }
                }
                v
            });
            Term {
                output: jt,
                input: t,
                baby: baby as i64,
                giant: giant as i64,
                values,
            }
        })
        .collect();
    let bias = out_chans
        .iter()
        .map(|blocks| {
            let blocks = blocks.clone();
            (blocks.iter().flatten().any(|&o| c.bias[o] != 0.0)).then(|| {
                Box::new(move || {
                    let mut v = vec![0.0; slots];
                    for (j, o) in blocks.iter().enumerate() {
                        let Some(o) = *o else { continue };
                        for oy in 0..oh {
                            for ox in 0..ow {
                                v[j * block + out.slot(oy, ox)] = c.bias[o];
                            }
                        }
                    }
                    v
                }) as Values
            })
        })
        .collect();
    Ok(ConvPlan {
        terms,
        layout: Layout::Planes {
            grid: out,
            block,
            chans: out_chans,
        },
        bias,
        zero,
    })
}

/// Output channels onto the usable blocks: all of them in one ciphertext, repeated as often
/// as they fit, or in groups of one ciphertext each.
fn assign(oc: usize, usable: &[usize], per_ct: usize) -> Vec<Vec<Option<usize>>> {
    let n = usable.len();
    let groups = oc.div_ceil(n);
    let mut chans = vec![vec![None; per_ct]; groups];
    if groups == 1 {
        for (r, &j) in usable.iter().take(n / oc * oc).enumerate() {
            chans[0][j] = Some(r % oc);
        }
    } else {
        for o in 0..oc {
            chans[o / n][usable[o % n]] = Some(o);
        }
    }
    chans
}

/// A dense layer planned on any layout: products that leave output u (< period) summed in
/// every slot s ≡ u (mod period) once the product's slots are added up period by period.
pub(super) struct DensePlan<'a> {
    pub terms: Vec<Term<'a>>,
    pub period: usize,
    pub zero: usize,
}

/// Plans dense layer `d` on `layout`, the map's values weighted by `factor` (a folded global
/// pooling's divisor, read per channel when `per_channel`).
///
/// Input value at slot c rotated by δ < period lands on slot c − δ, whose output is
/// (c − δ) mod period: each (value, output) pair has exactly one δ. δ = giant + baby with
/// baby < b₁, b₁ chosen for the fewest rotations.
pub(super) fn dense<'a>(
    layout: &Layout,
    d: &'a Dense,
    per_channel: bool,
    factor: f64,
    slots: usize,
) -> DensePlan<'a> {
    let period = d.out.next_power_of_two();
    let inputs = layout.count();
    let features = layout.features(per_channel);
    // b₁ baby steps per input ciphertext and period/b₁ giant steps
    let b1 = (0..=period.trailing_zeros())
        .map(|k| 1usize << k)
        .min_by_key(|&b| inputs * (b - 1) + (period / b - 1))
        .expect("period ≥ 1");
    let mut by_ct: Vec<Vec<Feature>> = (0..inputs).map(|_| Vec::new()).collect();
    for f in features {
        by_ct[f.ct].push(f);
    }
    let by_ct = std::sync::Arc::new(by_ct);
    let mut terms = Vec::new();
    let mut zero = 0;
    for (ct, fs) in by_ct.iter().enumerate() {
        for delta in 0..period {
            let target = move |f: &Feature| {
                let j = (f.slot + slots - delta) % slots;
                (j, j % period)
            };
            let live = fs.iter().any(|f| {
                let (_, u) = target(f);
                u < d.out && d.weight[u * d.inp + f.index] != 0.0
            });
            if !live {
                zero += 1;
                continue;
            }
            let by_ct = by_ct.clone();
            terms.push(Term {
                output: 0,
                input: ct,
                baby: (delta % b1) as i64,
                giant: (delta - delta % b1) as i64,
                values: Box::new(move || {
                    let mut v = vec![0.0; slots];
                    for f in &by_ct[ct] {
                        let (j, u) = target(f);
                        if u < d.out {
                            v[j] = d.weight[u * d.inp + f.index] * factor;
                        }
                    }
                    v
                }),
            });
        }
    }
    DensePlan {
        terms,
        period,
        zero,
    }
}
