//! Lowering an ONNX graph node by node into hejob layers: every value is a constant or a
//! polynomial of the network's latest tensor; linear nodes emit layers, elementwise nodes fold
//! into the polynomial that the next layer (or the output) emits as one activation.

use std::collections::HashMap;
use std::path::PathBuf;

use onnx_ir::NodeProto;

use super::polynomial::{Poly, MAX_DEGREE};
use super::shapes;
use super::tensor::{Attributes, Tensor};
use crate::model::{Activation, AvgPool, BatchNorm, Conv, Dense, Layer, LayerKind, Shape};

/// The order of a 4-D tensor's axes: ONNX's, or the one of Keras graphs, which tf2onnx
/// transposes to ONNX's around each layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// A value computed from the image.
#[derive(Clone, Debug)]
struct Feature {
    /// `poly(t)`, where `t` is the network's tensor at version `head` (the image at 0; each
    /// layer, and each constant folded into one, makes a new version).
    head: usize,
    poly: Poly,
    /// The node that last changed it ("" for a layer's output).
    source: String,
    layout: Layout,
}

/// A value flowing through the graph.
#[derive(Clone, Debug)]
enum Value {
    Const(Tensor),
    Feature(Feature),
}

/// The layers made so far, and every named value.
pub struct Lowering {
    values: HashMap<String, Value>,
    layers: Vec<Layer>,
    /// The ONNX node each layer came from.
    sources: Vec<String>,
    /// The shape after the layers (the image's before any).
    shape: Shape,
    /// The version of the network's latest tensor.
    version: usize,
    numbers: HashMap<&'static str, usize>,
    /// The ONNX file's folder, where external data lies.
    folder: PathBuf,
    /// Whether the latest tensor is one vector per image (ONNX rank 2) rather than a map.
    vector: bool,
    /// Set when a map in NHWC order was flattened: the map's shape, whose HWC-ordered vector
    /// the next dense layer's columns are permuted from.
    hwc_vector: Option<Shape>,
}

/// What a node cannot be, in words (the caller names the node and the file).
pub type Reason = String;

impl Lowering {
    /// Starts at the image, called `input` in the graph, of `shape` laid out as `layout`;
    /// external data is read from `folder`.
    pub fn new(input: &str, shape: Shape, layout: Layout, folder: PathBuf) -> Self {
        let image = Value::Feature(Feature {
            head: 0,
            poly: Poly::identity(),
            source: input.to_string(),
            layout,
        });
        Self {
            values: HashMap::from([(input.to_string(), image)]),
            layers: Vec::new(),
            sources: Vec::new(),
            shape,
            version: 0,
            numbers: HashMap::new(),
            folder,
            vector: false,
            hwc_vector: None,
        }
    }

    /// The latest tensor itself.
    fn latest(&self) -> Feature {
        Feature {
            head: self.version,
            poly: Poly::identity(),
            source: String::new(),
            layout: Layout::Nchw,
        }
    }

    /// Names a constant (an initializer).
    pub fn constant(&mut self, name: &str, t: Tensor) {
        self.values.insert(name.to_string(), Value::Const(t));
    }

    /// The layers, each with the node it came from, once `output` is the network's output.
    pub fn finish(mut self, output: &str) -> Result<(Vec<Layer>, Vec<String>), Reason> {
        match self.value(output)? {
            v @ Value::Feature(_) => {
                self.take(&v, "the graph's output")?;
                Ok((self.layers, self.sources))
            }
            Value::Const(_) => Err(format!("the graph's output '{output}' is a constant")),
        }
    }

    /// Lowers one node.
    pub fn node(&mut self, n: &NodeProto, name: &str) -> Result<(), Reason> {
        let attrs = Attributes::of(n);
        let out = match n.op_type.as_str() {
            "Constant" => Value::Const(attrs.constant(&self.folder)?),
            "Identity" | "Dropout" => self.input(n, 0)?,
            "Conv" => self.conv(n, &attrs, name)?,
            "BatchNormalization" => self.batchnorm(n, &attrs, name)?,
            "AveragePool" => self.avgpool(n, &attrs, name)?,
            "GlobalAveragePool" => {
                self.take(&self.input(n, 0)?, name)?;
                self.push("gap", LayerKind::GlobalAvgPool { scale: None }, name)?
            }
            "Flatten" => {
                let axis = attrs.int("axis", 1);
                if axis != 1 {
                    return Err(format!(
                        "flattens from axis {axis}; only axis 1 (one vector per image) is supported"
                    ));
                }
                self.flatten(n, name)?
            }
            "Reshape" => self.reshape(n, &attrs, name)?,
            "Gemm" => self.gemm(n, &attrs, name)?,
            "MatMul" => {
                let w = self.weight(n, 1, "weight")?;
                let [inp, out] = w.dims[..] else {
                    return Err(format!(
                        "multiplies by a {}-D constant; only a 2-D weight (in × out) is supported",
                        w.dims.len()
                    ));
                };
                let weight = transpose(&w.values, inp, out);
                self.dense(n, name, inp, out, weight, vec![0.0; out])?
            }
            "Relu" => {
                self.take(&self.input(n, 0)?, name)?;
                let relu = LayerKind::Activation(Activation::Relu, "relu".into());
                self.push("act", relu, name)?
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Neg" => self.elementwise(n, name)?,
            "Transpose" => self.transpose(n, &attrs)?,
            "Shape" => self.shape_of(n)?,
            "Gather" => {
                let (data, indices) = (self.folded(n, 0)?, self.folded(n, 1)?);
                Value::Const(shapes::gather(&data, &indices, &attrs)?)
            }
            "Slice" => {
                let data = self.folded(n, 0)?;
                let bounds = (1..5)
                    .map(|i| self.optional(n, i, "bound"))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Const(shapes::slice(&data, &bounds, &attrs)?)
            }
            "Concat" => {
                let parts = (0..n.input.len())
                    .map(|i| self.folded(n, i))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::Const(shapes::concat(&parts)?)
            }
            "Unsqueeze" | "Squeeze" => {
                Value::Const(shapes::relabel(&n.op_type, &self.folded(n, 0)?, &attrs))
            }
            "Cast" => match self.input(n, 0)? {
                Value::Const(t) => Value::Const(shapes::relabel("Cast", &t, &attrs)),
                // TensorProto.DataType: float, float16, double, bfloat16
                f @ Value::Feature(_) if [1, 10, 11, 16].contains(&attrs.int("to", 1)) => f,
                Value::Feature(_) => {
                    return Err("casts the tensor to a type that is not floating point".into())
                }
            },
            op => return Err(unsupported(op)),
        };
        let first = n
            .output
            .first()
            .ok_or_else(|| "has no output".to_string())?;
        self.values.insert(first.clone(), out);
        Ok(())
    }

    fn value(&self, name: &str) -> Result<Value, Reason> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| format!("reads '{name}', which no earlier node or initializer makes"))
    }

    /// Input `i` of `n`.
    fn input(&self, n: &NodeProto, i: usize) -> Result<Value, Reason> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            Some(name) => self.value(name),
            None => Err(format!("has no input {i}")),
        }
    }

    /// Input `i` as a constant (a weight); `what` names it in messages.
    fn weight(&self, n: &NodeProto, i: usize, what: &str) -> Result<Tensor, Reason> {
        match self.input(n, i)? {
            Value::Const(t) => Ok(t),
            Value::Feature(_) => Err(format!(
                "its {what} (input {i}) is computed from the image; it must be a constant"
            )),
        }
    }

    /// Input `i` of a node that only folds constants (shape arithmetic).
    fn folded(&self, n: &NodeProto, i: usize) -> Result<Tensor, Reason> {
        match self.input(n, i)? {
            Value::Const(t) => Ok(t),
            Value::Feature(_) => Err(format!(
                "reads the image's tensor; {} is read only in shape arithmetic on constants",
                n.op_type
            )),
        }
    }

    /// An optional constant input.
    fn optional(&self, n: &NodeProto, i: usize, what: &str) -> Result<Option<Tensor>, Reason> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            Some(_) => self.weight(n, i, what).map(Some),
            None => Ok(None),
        }
    }

    /// Makes `v` the network's latest tensor, as the input of a layer (or of the output):
    /// its pending polynomial becomes an activation layer.
    fn take(&mut self, v: &Value, name: &str) -> Result<(), Reason> {
        let Value::Feature(Feature {
            head,
            poly,
            source,
            layout,
        }) = v
        else {
            return Err("its input is a constant; it must be computed from the image".into());
        };
        if *layout != Layout::Nchw {
            return Err(
                "reads the tensor in NHWC order; ONNX's layers take NCHW (a Transpose \
                 with perm [0, 3, 1, 2] comes first)"
                    .into(),
            );
        }
        if *head != self.version {
            return Err(
                "reads a tensor from before the latest layer: only a chain of layers \
                 (no branch or skip connection) can be imported"
                    .into(),
            );
        }
        if !poly.is_identity() {
            let c = poly.coefficients().to_vec();
            let label = match c[..] {
                [0.0, 0.0, 1.0] => "square".to_string(),
                _ => format!("poly-deg{}", poly.degree()),
            };
            let at = if source.is_empty() { name } else { source };
            self.push("act", LayerKind::Activation(Activation::Poly(c), label), at)?;
        }
        Ok(())
    }

    /// Appends a layer read from node `name`; the value it makes.
    fn push(
        &mut self,
        stem: &'static str,
        mut kind: LayerKind,
        name: &str,
    ) -> Result<Value, Reason> {
        if let Some(map) = self.hwc_vector {
            match &mut kind {
                LayerKind::Dense(d) if d.inp == map.len() => {
                    d.weight = from_hwc_columns(&d.weight, d.inp, map);
                    self.hwc_vector = None;
                }
                LayerKind::Activation(..) => {}
                _ => {
                    return Err(
                        "reads a vector flattened in NHWC order; only a dense layer \
                         (after any activation) can follow one"
                            .into(),
                    )
                }
            }
        }
        let number = self.numbers.entry(stem).or_default();
        *number += 1;
        let layer = Layer::new(format!("{stem}{number}"), kind);
        self.shape = layer
            .output_shape(self.layers.len(), self.shape)
            .map_err(|e| e.to_string())?;
        self.layers.push(layer);
        self.sources.push(name.to_string());
        self.version += 1;
        Ok(Value::Feature(self.latest()))
    }

    fn conv(&mut self, n: &NodeProto, attrs: &Attributes, name: &str) -> Result<Value, Reason> {
        let w = self.weight(n, 1, "weight")?;
        let [oc, ic, kh, kw] = w.dims[..] else {
            return Err(format!(
                "weight of shape {:?}: only 2-D convolutions (weights O×I×H×W) are supported",
                w.dims
            ));
        };
        let bias = match self.optional(n, 2, "bias")? {
            Some(b) if b.values.len() == oc => b.values,
            Some(b) => {
                return Err(format!(
                    "bias has {} values for {oc} filters",
                    b.values.len()
                ))
            }
            None => vec![0.0; oc],
        };
        let group = attrs.int("group", 1);
        if group != 1 {
            return Err(format!(
                "grouped convolution (group {group}) is not supported; only group = 1"
            ));
        }
        ones(attrs, "dilations", "dilation")?;
        let stride = square(attrs, "strides", "stride")?;
        let padding = padding(attrs, stride, (kh, kw))?;
        self.take(&self.input(n, 0)?, name)?;
        let conv = Conv {
            oc,
            ic,
            kh,
            kw,
            stride,
            padding,
            weight: w.values,
            bias,
        };
        self.push("conv", LayerKind::Conv(conv), name)
    }

    fn batchnorm(
        &mut self,
        n: &NodeProto,
        attrs: &Attributes,
        name: &str,
    ) -> Result<Value, Reason> {
        if n.output.iter().skip(1).any(|o| !o.is_empty()) {
            return Err(
                "a training-mode batch norm (it outputs running statistics); export the \
                 network in eval mode"
                    .into(),
            );
        }
        if attrs.int("spatial", 1) != 1 {
            return Err("spatial = 0 (per-position statistics) is not supported".into());
        }
        let [gamma, beta, mean, var] = ["scale", "bias", "mean", "var"]
            .into_iter()
            .enumerate()
            .map(|(i, what)| self.weight(n, i + 1, what).map(|t| t.values))
            .collect::<Result<Vec<_>, _>>()?
            .try_into()
            .expect("four inputs");
        self.take(&self.input(n, 0)?, name)?;
        let eps = attrs.float("epsilon", 1e-5);
        let bn = BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps,
        };
        self.push("bn", LayerKind::BatchNorm(bn), name)
    }

    fn avgpool(&mut self, n: &NodeProto, attrs: &Attributes, name: &str) -> Result<Value, Reason> {
        let kernel = match attrs.ints("kernel_shape").as_deref() {
            Some(&[a, b]) if a == b && a > 0 => a as usize,
            Some(k) => {
                return Err(format!(
                    "pooling window {k:?}: only square 2-D windows are supported"
                ))
            }
            None => return Err("has no kernel_shape".into()),
        };
        ones(attrs, "dilations", "dilation")?;
        let stride = square(attrs, "strides", "stride")?;
        if padding(attrs, stride, (kernel, kernel))? != 0 {
            return Err(format!(
                "padded pooling (pads {:?}) is not supported; pool without padding",
                attrs.ints("pads").unwrap_or_default()
            ));
        }
        self.take(&self.input(n, 0)?, name)?;
        let exact = |d: usize| d >= kernel && (d - kernel).is_multiple_of(stride);
        if attrs.int("ceil_mode", 0) != 0 && !(exact(self.shape.h) && exact(self.shape.w)) {
            return Err(format!(
                "ceil_mode = 1 adds a partial window on {}; only windows that fit are supported",
                self.shape
            ));
        }
        let pool = AvgPool {
            kernel,
            stride,
            scale: 1.0 / (kernel * kernel) as f64,
        };
        self.push("pool", LayerKind::AvgPool(pool), name)
    }

    /// One vector per image: a flatten layer unless the tensor already is one. A map in NHWC
    /// order flattens in that order, which the next dense layer's columns are permuted from.
    fn flatten(&mut self, n: &NodeProto, name: &str) -> Result<Value, Reason> {
        let mut v = self.input(n, 0)?;
        let mut hwc = false;
        if let Value::Feature(f) = &mut v {
            hwc = f.layout == Layout::Nhwc && !self.vector;
            f.layout = Layout::Nchw;
        }
        self.take(&v, name)?;
        let map = self.shape;
        let out = if map.h == 1 && map.w == 1 {
            Value::Feature(self.latest())
        } else {
            self.push("flatten", LayerKind::Flatten, name)?
        };
        self.vector = true;
        // the order matters only where there are several channels and several positions
        self.hwc_vector = Some(map).filter(|s| hwc && s.c > 1 && s.h * s.w > 1);
        Ok(out)
    }

    fn reshape(&mut self, n: &NodeProto, attrs: &Attributes, name: &str) -> Result<Value, Reason> {
        let target = match n.input.get(1).filter(|s| !s.is_empty()) {
            Some(_) => self.weight(n, 1, "shape")?.integers(),
            None => attrs.ints("shape"),
        }
        .ok_or_else(|| "has no whole-number target shape".to_string())?;
        let total = self.shape.len() as i64;
        if let [-1..=1, len] = target[..] {
            if len == -1 || len == total {
                return self.flatten(n, name);
            }
        }
        // a 4-D target that only renames NCHW as NHWC or back, the memory order unchanged
        // (one channel, or one position): how tf2onnx turns a one-channel image around
        let Value::Feature(mut f) = self.input(n, 0)? else {
            return Err("reshapes a constant; fold constants when exporting".into());
        };
        let s = self.shape;
        let (nchw, nhwc) = ([s.c, s.h, s.w], [s.h, s.w, s.c]);
        let current = if f.layout == Layout::Nchw { nchw } else { nhwc };
        let resolved: Option<Vec<usize>> = match target[..] {
            [-1..=1, a, b, c] => [a, b, c]
                .iter()
                .zip(current)
                .map(|(&t, d)| match t {
                    0 => Some(d),
                    t if t > 0 => Some(t as usize),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        let same_memory = s.c == 1 || s.h * s.w == 1;
        match resolved {
            Some(dims) if !self.vector && dims == current => Ok(Value::Feature(f)),
            Some(dims) if !self.vector && same_memory && (dims == nchw || dims == nhwc) => {
                f.layout = if dims == nchw {
                    Layout::Nchw
                } else {
                    Layout::Nhwc
                };
                Ok(Value::Feature(f))
            }
            _ => Err(format!(
                "reshapes to {target:?}; only a reshape to one vector per image ([N, -1]) is \
                 supported"
            )),
        }
    }

    fn gemm(&mut self, n: &NodeProto, attrs: &Attributes, name: &str) -> Result<Value, Reason> {
        if let Value::Const(_) = self.input(n, 0)? {
            return Err(
                "multiplies a constant by the image; the image must be Gemm's first \
                 operand (A)"
                    .into(),
            );
        }
        if attrs.int("transA", 0) != 0 {
            return Err(
                "transA = 1 is not supported; the image must be A, one row per image".into(),
            );
        }
        let w = self.weight(n, 1, "weight")?;
        let [rows, cols] = w.dims[..] else {
            return Err(format!("weight of shape {:?} is not 2-D", w.dims));
        };
        let alpha = attrs.float("alpha", 1.0);
        let beta = attrs.float("beta", 1.0);
        let (inp, out, weight) = if attrs.int("transB", 0) != 0 {
            (cols, rows, w.values)
        } else {
            (rows, cols, transpose(&w.values, rows, cols))
        };
        let weight = weight.iter().map(|v| alpha * v).collect();
        let bias = match self.optional(n, 2, "bias")? {
            None => vec![0.0; out],
            Some(c) if c.values.len() == out => c.values.iter().map(|v| beta * v).collect(),
            Some(c) => match c.scalar() {
                Some(v) => vec![beta * v; out],
                None => return Err(format!("bias of shape {:?} for {out} outputs", c.dims)),
            },
        };
        self.dense(n, name, inp, out, weight, bias)
    }

    fn dense(
        &mut self,
        n: &NodeProto,
        name: &str,
        inp: usize,
        out: usize,
        weight: Vec<f64>,
        bias: Vec<f64>,
    ) -> Result<Value, Reason> {
        match self.input(n, 0)? {
            Value::Const(_) => {
                Err("multiplies two constants; fold constants when exporting".into())
            }
            v => {
                self.take(&v, name)?;
                let dense = Dense {
                    out,
                    inp,
                    weight,
                    bias,
                };
                let made = self.push("fc", LayerKind::Dense(dense), name);
                self.vector = true;
                made
            }
        }
    }

    /// `Add`, `Sub`, `Mul`, `Div`, `Pow` and `Neg`: polynomial arithmetic on one tensor, or a
    /// per-channel constant folded into the layer before it.
    fn elementwise(&mut self, n: &NodeProto, name: &str) -> Result<Value, Reason> {
        let op = n.op_type.as_str();
        let a = self.input(n, 0)?;
        let b = if op == "Neg" {
            Value::Const(Tensor {
                dims: vec![],
                values: vec![-1.0],
            })
        } else {
            self.input(n, 1)?
        };
        let too_high = || format!("the polynomial's degree passes {MAX_DEGREE}");
        let with = |f: &Feature, poly: Poly| {
            Value::Feature(Feature {
                poly,
                source: name.to_string(),
                ..f.clone()
            })
        };
        match (a, b) {
            (Value::Const(x), Value::Const(y)) => constant_arithmetic(op, &x, &y).map(Value::Const),
            (Value::Feature(f), Value::Feature(g)) => {
                if f.head != g.head || f.layout != g.layout {
                    return Err(format!(
                        "{} two different tensors: only a polynomial of one tensor can be an \
                         activation, and only a chain of layers (no skip connection) can be \
                         imported",
                        verb(op)
                    ));
                }
                let (p, q) = (&f.poly, &g.poly);
                match op {
                    "Add" => Ok(with(&f, p.add(q))),
                    "Sub" => Ok(with(&f, p.add(&q.scale(-1.0)))),
                    "Mul" => p.mul(q).map(|r| with(&f, r)).ok_or_else(too_high),
                    _ => Err(format!(
                        "{op} of the tensor by itself has no polynomial form"
                    )),
                }
            }
            (Value::Feature(f), Value::Const(c)) => match (op, c.scalar()) {
                ("Add", Some(v)) => Ok(with(&f, f.poly.add(&Poly::constant(v)))),
                ("Sub", Some(v)) => Ok(with(&f, f.poly.add(&Poly::constant(-v)))),
                ("Mul" | "Neg", Some(v)) => Ok(with(&f, f.poly.scale(v))),
                ("Div", Some(v)) if v != 0.0 => Ok(with(&f, f.poly.scale(1.0 / v))),
                ("Pow", Some(v)) => match exponent(v) {
                    Some(k) => f.poly.pow(k).map(|r| with(&f, r)).ok_or_else(too_high),
                    None => Err(format!(
                        "exponent {v} is not a whole number from 0 to {MAX_DEGREE}: only \
                         integer powers are polynomials"
                    )),
                },
                ("Add", None) => self.per_channel(&f, &c, Fold::Add(1.0)),
                ("Sub", None) => self.per_channel(&f, &c, Fold::Add(-1.0)),
                ("Mul", None) => self.per_channel(&f, &c, Fold::Mul),
                _ => Err(format!(
                    "{} a constant of shape {:?}; only a one-value constant can",
                    verb(op),
                    c.dims
                )),
            },
            (Value::Const(c), Value::Feature(f)) => match (op, c.scalar()) {
                ("Add", Some(v)) => Ok(with(&f, f.poly.add(&Poly::constant(v)))),
                ("Sub", Some(v)) => Ok(with(&f, f.poly.scale(-1.0).add(&Poly::constant(v)))),
                ("Mul", Some(v)) => Ok(with(&f, f.poly.scale(v))),
                ("Add", None) => self.per_channel(&f, &c, Fold::Add(1.0)),
                ("Mul", None) => self.per_channel(&f, &c, Fold::Mul),
                ("Div", _) => Err("divides by the tensor: 1/x has no polynomial form".into()),
                ("Pow", _) => Err("raises a constant to the tensor's power: that has no \
                     polynomial form"
                    .into()),
                _ => Err(format!(
                    "{} a constant of shape {:?}; only a one-value constant can",
                    verb(op),
                    c.dims
                )),
            },
        }
    }

    /// A per-channel constant folded into the layer just made, a Conv or a dense layer: added
    /// to its bias (a MatMul's `Add`, a bias tf2onnx keeps apart), or multiplying its weights
    /// and bias (a batch norm an exporter turned into `Mul` and `Add`).
    fn per_channel(&mut self, f: &Feature, c: &Tensor, fold: Fold) -> Result<Value, Reason> {
        let channels = self.shape.c;
        // the dims broadcast along the channel axis only: [C] / [1, C] on a vector, [C, 1, 1]
        // on an NCHW map, [C] on an NHWC one
        let mut significant = c.dims.iter().rev().skip_while(|&&d| d == 1);
        let channel_axis = match (self.vector, f.layout) {
            (true, _) | (false, Layout::Nhwc) => c.dims.last() == Some(&channels),
            (false, Layout::Nchw) => c.dims.iter().rev().take(2).all(|&d| d == 1),
        };
        let fits = c.values.len() == channels
            && significant.next() == Some(&channels)
            && significant.all(|&d| d == 1)
            && channel_axis;
        let last = (fits && f.head == self.version && f.poly.is_identity())
            .then(|| self.layers.last_mut())
            .flatten();
        let (weight, bias) = match last.map(|l| &mut l.kind) {
            Some(LayerKind::Conv(conv)) => (&mut conv.weight, &mut conv.bias),
            Some(LayerKind::Dense(dense)) => (&mut dense.weight, &mut dense.bias),
            _ => {
                return Err(format!(
                    "{} a constant of shape {:?} that varies across the tensor; only a \
                     one-value constant, or a per-channel one right after a Conv, Gemm or \
                     MatMul, can",
                    fold.verb(),
                    c.dims
                ))
            }
        };
        let per = weight.len() / channels;
        for (o, v) in c.values.iter().enumerate() {
            match fold {
                Fold::Add(sign) => bias[o] += sign * v,
                Fold::Mul => {
                    bias[o] *= v;
                    weight[o * per..(o + 1) * per]
                        .iter_mut()
                        .for_each(|w| *w *= v);
                }
            }
        }
        // values read before the fold are the tensor without it: stale from here on
        self.version += 1;
        Ok(Value::Feature(Feature {
            layout: f.layout,
            ..self.latest()
        }))
    }

    /// `Transpose` between ONNX's NCHW and Keras's NHWC (what tf2onnx writes around layers).
    fn transpose(&mut self, n: &NodeProto, attrs: &Attributes) -> Result<Value, Reason> {
        let Value::Feature(mut f) = self.input(n, 0)? else {
            return Err("transposes a constant; fold constants when exporting".into());
        };
        let perm = attrs.ints("perm").unwrap_or_default();
        f.layout = match (f.layout, &perm[..]) {
            (layout, [0, 1, 2, 3]) => layout,
            (Layout::Nchw, [0, 2, 3, 1]) if !self.vector => Layout::Nhwc,
            (Layout::Nhwc, [0, 3, 1, 2]) if !self.vector => Layout::Nchw,
            _ => {
                return Err(format!(
                    "permutation {perm:?}: only NCHW ↔ NHWC ([0, 2, 3, 1], [0, 3, 1, 2]) is \
                     supported"
                ))
            }
        };
        Ok(Value::Feature(f))
    }

    /// `Shape` of the image's tensor, with a batch of one (shape arithmetic folds it).
    fn shape_of(&self, n: &NodeProto) -> Result<Value, Reason> {
        let Value::Feature(f) = self.input(n, 0)? else {
            return Err("takes the shape of a constant; fold constants when exporting".into());
        };
        let s = self.shape;
        let dims: Vec<usize> = match (self.vector, f.layout) {
            (true, _) => vec![1, s.len()],
            (false, Layout::Nchw) => vec![1, s.c, s.h, s.w],
            (false, Layout::Nhwc) => vec![1, s.h, s.w, s.c],
        };
        Ok(Value::Const(Tensor {
            dims: vec![dims.len()],
            values: dims.iter().map(|&d| d as f64).collect(),
        }))
    }
}

/// Dense weights `out × inp` whose columns read a vector flattened from `map` in HWC order,
/// reordered to read it in CHW order (hejob's flatten).
fn from_hwc_columns(weight: &[f64], inp: usize, map: Shape) -> Vec<f64> {
    let out = weight.len() / inp;
    let hwc = |c: usize, y: usize, x: usize| (y * map.w + x) * map.c + c;
    let mut moved = vec![0.0; weight.len()];
    for o in 0..out {
        for c in 0..map.c {
            for y in 0..map.h {
                for x in 0..map.w {
                    let chw = (c * map.h + y) * map.w + x;
                    moved[o * inp + chw] = weight[o * inp + hwc(c, y, x)];
                }
            }
        }
    }
    moved
}

/// How a per-channel constant folds into the layer before it.
#[derive(Clone, Copy)]
enum Fold {
    /// Added (1) or subtracted (-1).
    Add(f64),
    Mul,
}

impl Fold {
    fn verb(self) -> &'static str {
        match self {
            Fold::Add(s) if s > 0.0 => "adds",
            Fold::Add(_) => "subtracts",
            Fold::Mul => "multiplies by",
        }
    }
}

fn verb(op: &str) -> &'static str {
    match op {
        "Add" => "adds",
        "Sub" => "subtracts",
        "Mul" => "multiplies",
        "Div" => "divides by",
        _ => "raises to a power",
    }
}

/// A whole-number exponent a polynomial can take.
fn exponent(v: f64) -> Option<u32> {
    (v.fract() == 0.0 && (0.0..=MAX_DEGREE as f64).contains(&v)).then_some(v as u32)
}

/// Arithmetic on two constants (what an exporter left unfolded): same shape, or one scalar.
fn constant_arithmetic(op: &str, x: &Tensor, y: &Tensor) -> Result<Tensor, Reason> {
    let f = |a: f64, b: f64| match op {
        "Add" => a + b,
        "Sub" => a - b,
        "Mul" | "Neg" => a * b,
        "Div" => a / b,
        _ => a.powf(b),
    };
    let (dims, values) = match (x.scalar(), y.scalar()) {
        (_, Some(b)) => (x.dims.clone(), x.values.iter().map(|&a| f(a, b)).collect()),
        (Some(a), _) => (y.dims.clone(), y.values.iter().map(|&b| f(a, b)).collect()),
        _ if x.dims == y.dims => (
            x.dims.clone(),
            x.values
                .iter()
                .zip(&y.values)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        ),
        _ => {
            return Err(format!(
                "{op} of constants of shapes {:?} and {:?}; fold constants when exporting",
                x.dims, y.dims
            ))
        }
    };
    Ok(Tensor { dims, values })
}

/// `rows × cols` row-major, transposed.
fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
        .collect()
}

/// A 2-D attribute that must be the same on both axes (`strides`); 1 when absent.
fn square(attrs: &Attributes, key: &str, what: &str) -> Result<usize, Reason> {
    match attrs.ints(key).as_deref() {
        None => Ok(1),
        Some(&[a, b]) if a == b && a > 0 => Ok(a as usize),
        Some(v) => Err(format!(
            "{what} {v:?}: only the same positive {what} on both axes is supported"
        )),
    }
}

/// Refuses any value but 1 (`dilations`).
fn ones(attrs: &Attributes, key: &str, what: &str) -> Result<(), Reason> {
    match attrs.ints(key) {
        Some(v) if v.iter().any(|&d| d != 1) => {
            Err(format!("{what} {v:?} is not supported; only 1"))
        }
        _ => Ok(()),
    }
}

/// The one zero padding on every side that `pads` or `auto_pad` asks for.
fn padding(attrs: &Attributes, stride: usize, (kh, kw): (usize, usize)) -> Result<usize, Reason> {
    match attrs.string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => match attrs.ints("pads").as_deref() {
            None => Ok(0),
            Some(p) if !p.is_empty() && p.iter().all(|&v| v == p[0] && v >= 0) => Ok(p[0] as usize),
            Some(p) => Err(format!(
                "asymmetric padding {p:?} is not supported; pad the same on every side"
            )),
        },
        Some("VALID") => Ok(0),
        Some(same) if stride == 1 && kh == kw && kh % 2 == 1 => {
            log::debug!("auto_pad {same}: {} on every side", kh / 2);
            Ok(kh / 2)
        }
        Some(other) => Err(format!(
            "auto_pad {other} with stride {stride} and a {kh}×{kw} kernel pads unevenly; \
             give explicit symmetric pads"
        )),
    }
}

/// Why an operator outside the supported set is refused.
fn unsupported(op: &str) -> Reason {
    const NO_POLY: &[&str] = &[
        "Sigmoid",
        "Tanh",
        "HardSigmoid",
        "HardSwish",
        "LeakyRelu",
        "Elu",
        "Selu",
        "Celu",
        "Gelu",
        "Softplus",
        "Softsign",
        "Mish",
        "PRelu",
        "ThresholdedRelu",
        "Exp",
        "Log",
        "Sqrt",
        "Reciprocal",
        "Abs",
        "Max",
        "Min",
        "Clip",
        "Sign",
        "Erf",
    ];
    const SHAPES: &[&str] = &["Expand", "Tile", "ConstantOfShape", "Range", "Where"];
    match op {
        "MaxPool" | "GlobalMaxPool" => "max pooling has no polynomial form; use AveragePool".into(),
        "Softmax" | "LogSoftmax" => "softmax has no polynomial form; export the network \
             without it (hejob's outputs are the logits, whose largest is the same class)"
            .into(),
        _ if NO_POLY.contains(&op) => format!(
            "{op} has no polynomial form; replace it with a polynomial activation (hejob fit \
             gives least-squares fits of ReLU and Swish)"
        ),
        _ if SHAPES.contains(&op) => "computes a shape at run time; export with a fixed input \
             shape and constant folding, and flatten with torch.flatten(x, 1) or nn.Flatten()"
            .into(),
        _ => format!(
            "operator {op} is not supported (supported: Conv, BatchNormalization, \
             AveragePool, GlobalAveragePool, Flatten, Reshape, Gemm, MatMul, Add, Sub, Mul, \
             Div, Neg, Pow, Relu, Transpose, Identity, Dropout, Constant, and Shape, Gather, \
             Slice, Concat, Cast, Squeeze, Unsqueeze on constants)"
        ),
    }
}
