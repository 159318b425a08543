//! The linear layers of `channel-fast` as sums of rotated inputs times stored weight
//! plaintexts, with baby-step/giant-step sharing: each distinct rotation of an input
//! ciphertext (baby step) is computed once for all outputs, and each output sums its products
//! per giant step before one rotation of the sum.

use std::collections::{BTreeMap, BTreeSet};

use super::super::grid::Grid;
use super::layout::{Feature, Layout, Place, Planes};
use crate::he::exec::{Backend, Exec};
use crate::he::parallel::{par_each, par_map, width};
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
pub(super) fn bsgs<B: Backend>(
    exec: &Exec<B>,
    layer: usize,
    inputs: &[B::Ct],
    terms: &[Term],
    outputs: usize,
) -> R<Vec<Option<B::Ct>>> {
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
    let input = |i: usize, b: i64| -> &B::Ct {
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
    let threads = width();
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
            exec.multiply_plain_accumulate(&mut acc, input(t.input, t.baby), &pt)?;
        }
        Ok(acc)
    })?;
    let mut per_group: Vec<Vec<B::Ct>> = (0..groups.len()).map(|_| Vec::new()).collect();
    for ((g, _), p) in chunks.iter().zip(partial) {
        per_group[*g].extend(p);
    }
    let sums = par_each(per_group, |parts, g| {
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
    let mut out: Vec<Option<B::Ct>> = (0..outputs).map(|_| None).collect();
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

/// Rotations are weighed as this many products when choosing a convolution's output layout.
const ROTATION_COST: usize = 15;

/// What one output plane takes from one input channel at one kernel offset: output plane
/// `base` (channel `o`), input channel `i`, kernel offset `(ky, kx)`.
#[derive(Clone, Copy)]
struct Part {
    base: usize,
    o: usize,
    i: usize,
    ky: usize,
    kx: usize,
}

/// A convolution product: (output ciphertext, input ciphertext, step R) and what it covers.
type Product = ((usize, usize, i64), Vec<Part>);

/// Plans convolution `c` with output size `oh × ow` on `layout` (a planes layout).
///
/// Output plane (channel o at slot `base` of output ciphertext J) needs every input channel
/// i at every kernel offset k: slot s of the plane reads slot s + R of an input ciphertext I,
/// R = (input plane start − base) + k's offset on the grid. One product (J, I, R) covers all
/// the (plane, i, k) that share R, so the number of products is the number of distinct R.
/// Two output layouts are planned and the cheaper is kept: one plane per block (few distinct
/// block steps), or planes interleaved at every sub-offset of the output grid (a strided
/// map's gaps filled with other channels: fewer output ciphertexts, more distinct R). R is
/// split into a baby step (rotating an input) and a giant step (rotating an output's sum),
/// whichever split needs fewest rotations.
pub(super) fn conv<'a>(layout: &Layout, c: &'a Conv, (oh, ow): (usize, usize)) -> R<ConvPlan<'a>> {
    let Layout::Planes(inp) = layout else {
        return Err(HeError::Internal("convolution on a vector".into()));
    };
    let out = Grid {
        h: oh,
        w: ow,
        row: inp.grid.row * c.stride,
        col: inp.grid.col * c.stride,
    };
    let mut holders: Vec<Vec<(usize, usize)>> = vec![Vec::new(); c.ic];
    for (t, places) in inp.cts.iter().enumerate() {
        for p in places {
            holders[p.channel].push((t, p.base));
        }
    }
    if let Some(i) = holders.iter().position(Vec::is_empty) {
        return Err(HeError::Internal(format!(
            "input channel {i} is in no plane"
        )));
    }
    let mut options = vec![vec![0]];
    let subs = inp.sub_offsets(&out);
    if subs.len() > 1 {
        options.push(subs);
    }
    let mut best: Option<(usize, ConvPlan<'a>)> = None;
    for subs in options {
        let Some(plan) = conv_with(inp, c, out, &holders, &subs) else {
            continue;
        };
        let steps = plan
            .terms
            .iter()
            .map(|t| (t.input, t.output, t.baby, t.giant));
        let cost = plan.terms.len() + ROTATION_COST * rotations(steps);
        if best.as_ref().is_none_or(|(b, _)| cost < *b) {
            best = Some((cost, plan));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| HeError::Internal("no output plane finds every input channel".into()))
}

/// Rotations of a set of products given as (input, output, baby step, giant step): distinct
/// nonzero baby steps per input plus giant steps per output.
fn rotations(steps: impl Iterator<Item = (usize, usize, i64, i64)>) -> usize {
    let (mut babies, mut giants): (Vec<_>, Vec<_>) =
        steps.map(|(i, o, b, g)| ((i, b), (o, g))).unzip();
    let distinct = |v: &mut Vec<(usize, i64)>| {
        v.sort_unstable();
        v.dedup();
        v.iter().filter(|x| x.1 != 0).count()
    };
    distinct(&mut babies) + distinct(&mut giants)
}

/// The convolution with output planes at the block starts plus `subs`; `None` if no output
/// plane finds every input channel.
fn conv_with<'a>(
    inp: &Planes,
    c: &'a Conv,
    out: Grid,
    holders: &[Vec<(usize, usize)>],
    subs: &[usize],
) -> Option<ConvPlan<'a>> {
    let (block, slots) = (inp.block, inp.slots);
    let n = slots as i64;
    let delta = |base: usize, from: usize| (from as i64 - base as i64).rem_euclid(n);
    // per sub-offset, the steps its first plane needs; each (plane, i) then takes its
    // smallest step among them, so that repeated input channels add no step
    let allowed: Vec<BTreeSet<(usize, i64)>> = subs
        .iter()
        .map(|&s| {
            holders
                .iter()
                .map(|hs| {
                    let (d, t) = hs
                        .iter()
                        .map(|&(t, b)| (delta(s, b), t))
                        .min()
                        .expect("held");
                    (t, d)
                })
                .collect()
        })
        .collect();
    let pick = |k: usize, base: usize, i: usize| {
        holders[i]
            .iter()
            .map(|&(t, b)| (delta(base, b), t))
            .filter(|&(d, t)| allowed[k].contains(&(t, d)))
            .min()
    };
    let usable: Vec<(usize, usize)> = (0..slots / block)
        .flat_map(|j| {
            subs.iter()
                .enumerate()
                .map(move |(k, &s)| (k, j * block + s))
        })
        .filter(|&(k, base)| (0..c.ic).all(|i| pick(k, base, i).is_some()))
        .collect();
    if usable.is_empty() {
        return None;
    }
    let out_cts = assign(c.oc, &usable);
    let sub_of = |base: usize| subs.iter().position(|&s| s == base % block).expect("sub");
    let (p, row, col) = (c.padding as i64, inp.grid.row as i64, inp.grid.col as i64);
    let mut products: BTreeMap<(usize, usize, i64), Vec<Part>> = BTreeMap::new();
    for (jt, places) in out_cts.iter().enumerate() {
        for place in places {
            for i in 0..c.ic {
                let (d, t) = pick(sub_of(place.base), place.base, i).expect("usable plane");
                for ky in 0..c.kh {
                    for kx in 0..c.kw {
                        let r = (d + (ky as i64 - p) * row + (kx as i64 - p) * col).rem_euclid(n);
                        products.entry((jt, t, r)).or_default().push(Part {
                            base: place.base,
                            o: place.channel,
                            i,
                            ky,
                            kx,
                        });
                    }
                }
            }
        }
    }
    let weight = |q: &Part| c.weight[c.at(q.o, q.i, q.ky, q.kx)];
    let total = products.len();
    products.retain(|_, parts| parts.iter().any(|q| weight(q) != 0.0));
    let zero = total - products.len();
    let products: Vec<Product> = products.into_iter().collect();
    let split = best_split(&products, inp, c);
    let grid = inp.grid;
    let terms = products
        .into_iter()
        .map(|((jt, t, r), parts)| {
            let baby = split(r, &parts[0]);
            let values: Values = Box::new(move || {
                let mut v = vec![0.0; slots];
                for q in &parts {
                    let w = weight(q);
                    if w == 0.0 {
                        continue;
                    }
                    for oy in 0..out.h {
                        for ox in 0..out.w {
                            let y = (oy * c.stride + q.ky) as i64 - p;
                            let x = (ox * c.stride + q.kx) as i64 - p;
                            if y >= 0 && y < grid.h as i64 && x >= 0 && x < grid.w as i64 {
                                v[(q.base + out.slot(oy, ox)) % slots] = w;
                            }
                        }
                    }
                }
                v
            });
            Term {
                output: jt,
                input: t,
                baby,
                giant: (r - baby).rem_euclid(n),
                values,
            }
        })
        .collect();
    let layout = Planes::new(out, block, inp.fine, slots, out_cts);
    let bias = layout
        .cts
        .iter()
        .map(|places| {
            let places = places.clone();
            let planes = layout.clone();
            (places.iter().any(|q| c.bias[q.channel] != 0.0)).then(|| {
                Box::new(move || {
                    let mut v = vec![0.0; slots];
                    for q in &places {
                        for s in planes.slots_of(q.base) {
                            v[s] = c.bias[q.channel];
                        }
                    }
                    v
                }) as Values
            })
        })
        .collect();
    Some(ConvPlan {
        terms,
        layout: Layout::Planes(layout),
        bias,
        zero,
    })
}

/// A rule that splits a product's step R into its baby step (the rest is the giant step).
type Split = Box<dyn Fn(i64, &Part) -> i64>;

/// The split of every product's step that needs the fewest rotations, among: kernel row
/// `ky = q·r + m` with the column offset and m rows in the baby step (r = 1 … kh, from the
/// first part of the product), or R modulo a pitch M (centred or not) in the baby step.
fn best_split(products: &[Product], inp: &Planes, c: &Conv) -> Split {
    let (p, row, col) = (c.padding as i64, inp.grid.row as i64, inp.grid.col as i64);
    let n = inp.slots as i64;
    let mut rules: Vec<Split> = (1..=c.kh as i64)
        .map(|r| {
            Box::new(move |_: i64, q: &Part| {
                let m = q.ky as i64 % r;
                ((m - p) * row + (q.kx as i64 - p) * col).rem_euclid(n)
            }) as Split
        })
        .collect();
    let pitches = [
        inp.fine.0,
        inp.fine.1,
        inp.grid.row,
        inp.grid.col,
        inp.block,
    ];
    let moduli: BTreeSet<i64> = pitches
        .iter()
        .flat_map(|&m| (1..=8).map(move |k| (m * k) as i64))
        .filter(|&m| m > 1 && m < n)
        .collect();
    for m in moduli {
        for off in [0, m / 2] {
            rules.push(Box::new(move |r: i64, _: &Part| {
                let centred = if r > n / 2 { r - n } else { r };
                ((centred + off).rem_euclid(m) - off).rem_euclid(n)
            }));
        }
    }
    let count = |rule: &Split| {
        rotations(products.iter().map(|((jt, t, r), parts)| {
            let b = rule(*r, &parts[0]);
            (*t, *jt, b, (r - b).rem_euclid(n))
        }))
    };
    let best = (0..rules.len())
        .min_by_key(|&k| count(&rules[k]))
        .expect("rules");
    rules.swap_remove(best)
}

/// Output channels onto the usable planes: all of them in one ciphertext, repeated as often
/// as they fit, or in groups of one ciphertext each.
fn assign(oc: usize, usable: &[(usize, usize)]) -> Vec<Vec<Place>> {
    let n = usable.len();
    let place = |channel: usize, k: usize| Place {
        channel,
        base: usable[k].1,
    };
    if n >= oc {
        vec![(0..n / oc * oc).map(|k| place(k % oc, k)).collect()]
    } else {
        (0..oc.div_ceil(n))
            .map(|g| {
                (g * n..oc.min((g + 1) * n))
                    .map(|o| place(o, o % n))
                    .collect()
            })
            .collect()
    }
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
