//! L1-norm filter pruning (Li et al. 2017, as the paper): a conv layer's filters are ranked by
//! the L1 norm of their weights, the smallest fraction is removed, and every later layer that
//! reads those channels loses them too (batch norm entries, the next conv's input channels,
//! or the fully connected columns after flatten or global pooling).

use super::{Layer, LayerKind, Model, ModelError};

/// What a pruning step removed.
#[derive(Clone, Debug, PartialEq)]
pub struct Pruned {
    pub layer: String,
    pub before: usize,
    pub after: usize,
    /// The removed output channels, in ascending order.
    pub removed: Vec<usize>,
}

/// How many of `channels` filters a ratio removes: `floor(ratio · channels)` (64 → 58, 52, 45
/// at 0.1, 0.2, 0.3; 50 → 40 → 32 at 0.2), never all of them.
pub fn removed_count(channels: usize, ratio: f64) -> usize {
    ((ratio * channels as f64 + 1e-9).floor() as usize).min(channels.saturating_sub(1))
}

/// The filters of conv `layer` ranked by L1 norm, smallest first (ties by index).
pub fn l1_ranking(model: &Model, layer: &str) -> Result<Vec<usize>, ModelError> {
    let (_, conv) = find_conv(model, layer)?;
    let per = conv.ic * conv.kh * conv.kw;
    let norms: Vec<f64> = (0..conv.oc)
        .map(|o| {
            conv.weight[o * per..(o + 1) * per]
                .iter()
                .map(|w| w.abs())
                .sum()
        })
        .collect();
    let mut order: Vec<usize> = (0..conv.oc).collect();
    order.sort_by(|&a, &b| norms[a].total_cmp(&norms[b]).then(a.cmp(&b)));
    Ok(order)
}

/// Removes the `ratio` fraction of conv `layer`'s filters with the smallest L1 norms.
pub fn prune(model: &Model, layer: &str, ratio: f64) -> Result<(Model, Pruned), ModelError> {
    if !(0.0..1.0).contains(&ratio) {
        return Err(ModelError::Invalid(format!(
            "pruning ratio {ratio} is not in [0, 1)"
        )));
    }
    let (_, conv) = find_conv(model, layer)?;
    let before = conv.oc;
    let mut removed: Vec<usize> = l1_ranking(model, layer)?
        .into_iter()
        .take(removed_count(before, ratio))
        .collect();
    removed.sort_unstable();
    let pruned = remove_channels(model, layer, &removed)?;
    let info = Pruned {
        layer: layer.to_string(),
        before,
        after: before - removed.len(),
        removed,
    };
    Ok((pruned, info))
}

/// The model with output channels `removed` of conv `layer` gone, and every later layer that
/// reads them adjusted.
pub fn remove_channels(model: &Model, layer: &str, removed: &[usize]) -> Result<Model, ModelError> {
    let (at, _) = find_conv(model, layer)?;
    let shapes = model.validate()?;
    let mut out = model.clone();
    let keep = |n: usize| -> Vec<usize> { (0..n).filter(|c| !removed.contains(c)).collect() };
    let LayerKind::Conv(conv) = &mut out.layers[at].kind else {
        unreachable!("find_conv returned a conv layer")
    };
    let kept = keep(conv.oc);
    let per = conv.ic * conv.kh * conv.kw;
    conv.weight = kept
        .iter()
        .flat_map(|&o| conv.weight[o * per..(o + 1) * per].to_vec())
        .collect();
    conv.bias = kept.iter().map(|&o| conv.bias[o]).collect();
    conv.oc = kept.len();
    // walk on until a layer consumes the channels
    let mut flattened_plane: Option<usize> = None;
    for i in at + 1..out.layers.len() {
        let plane = shapes[i - 1].h * shapes[i - 1].w;
        let name = out.layers[i].name.clone();
        match &mut out.layers[i].kind {
            LayerKind::BatchNorm(bn) => {
                for v in [&mut bn.gamma, &mut bn.beta, &mut bn.mean, &mut bn.var] {
                    *v = kept.iter().map(|&c| v[c]).collect();
                }
            }
            LayerKind::Activation(..) | LayerKind::AvgPool(_) => {}
            LayerKind::Flatten => flattened_plane = Some(plane),
            LayerKind::GlobalAvgPool { .. } => flattened_plane = Some(1),
            LayerKind::Conv(next) => {
                let per_in = next.kh * next.kw;
                let ic = next.ic;
                next.weight = (0..next.oc)
                    .flat_map(|o| {
                        let w = &next.weight;
                        kept.iter().flat_map(move |&c| {
                            let start = (o * ic + c) * per_in;
                            w[start..start + per_in].to_vec()
                        })
                    })
                    .collect();
                next.ic = kept.len();
                return Ok(out);
            }
            LayerKind::Dense(d) => {
                let block = flattened_plane.ok_or_else(|| ModelError::Layer {
                    index: i,
                    name: name.clone(),
                    reason:
                        "a dense layer reads the pruned channels without flatten or global pooling"
                            .into(),
                })?;
                let inp = d.inp;
                d.weight = (0..d.out)
                    .flat_map(|o| {
                        let w = &d.weight;
                        kept.iter().flat_map(move |&c| {
                            let start = o * inp + c * block;
                            w[start..start + block].to_vec()
                        })
                    })
                    .collect();
                d.inp = kept.len() * block;
                return Ok(out);
            }
        }
    }
    Err(ModelError::Invalid(format!(
        "no layer after {layer} reads its channels: pruning it would change the output shape"
    )))
}

fn find_conv<'a>(model: &'a Model, layer: &str) -> Result<(usize, &'a super::Conv), ModelError> {
    let names = || {
        model
            .layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Conv(_)))
            .map(|l: &Layer| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match model.layers.iter().position(|l| l.name == layer) {
        Some(i) => match &model.layers[i].kind {
            LayerKind::Conv(c) => Ok((i, c)),
            _ => Err(ModelError::Invalid(format!(
                "layer {layer} is a {}, not a conv layer (conv layers: {})",
                model.layers[i].kind_name(),
                names()
            ))),
        },
        None => Err(ModelError::Invalid(format!(
            "no layer named {layer} (conv layers: {})",
            names()
        ))),
    }
}
