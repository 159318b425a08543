"""ONNX fixtures and the onnxruntime reference for tests/onnx_import.rs.

  onnx_tools.py fixtures OUT_DIR              every fixture graph, built with onnx.helper
  onnx_tools.py from-hejob MODEL.h5 OUT.onnx SPELLING
                                              a hejob model file as an ONNX graph (h5py)
  onnx_tools.py run MODEL.onnx DATASET DATA_DIR N [TENSOR]
                                              onnxruntime's output (or TENSOR) on the first N
                                              preprocessed test images, as JSON

The fixtures are made here, not committed, so that each test states the graph it imports.
"""

import gzip
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
NORM = {
    "mnist": ([0.1307], [0.3081]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
}


class Graph:
    """A sequential graph under construction: `x` is the name of the current tensor."""

    def __init__(self, dataset, seed=1, batch="N"):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0
        c, h, w = SHAPES[dataset]
        self.inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, c, h, w])]
        self.x = "input"

    def name(self, stem):
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, value, stem="c", dtype=np.float32):
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def constant_node(self, value, dtype=np.float32):
        """The same value as a Constant node rather than an initializer."""
        out = self.name("k")
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), out + "_value")
        self.nodes.append(helper.make_node("Constant", [], [out], name=f"/{out}/Constant", value=tensor))
        return out

    def node(self, op, inputs, name=None, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=name or f"/{out}/{op}", **attrs))
        return out

    def apply(self, op, *extra, **attrs):
        self.x = self.node(op, [self.x, *extra], **attrs)
        return self.x

    def weights(self, *shape, scale=None):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        s = scale if scale is not None else 1.0 / np.sqrt(fan_in)
        return self.rng.uniform(-s, s, size=shape)

    def conv(self, ic, oc, k, stride=1, pad=0, bias=True, **attrs):
        w = self.const(self.weights(oc, ic, k, k), "W")
        ins = [w] + ([self.const(self.weights(oc, scale=0.1), "B")] if bias else [])
        return self.apply("Conv", *ins, kernel_shape=[k, k], strides=[stride, stride],
                          pads=[pad] * 4, **attrs)

    def batchnorm(self, c, eps=1e-5):
        r = self.rng
        ins = [self.const(r.uniform(0.5, 1.5, c)), self.const(r.uniform(-0.2, 0.2, c)),
               self.const(r.uniform(-0.3, 0.3, c)), self.const(r.uniform(0.5, 2.0, c))]
        return self.apply("BatchNormalization", *ins, epsilon=eps)

    def gemm(self, inp, out, trans_b=1, alpha=1.0, beta=1.0):
        w = self.weights(out, inp)
        b = self.const(self.weights(out, scale=0.1), "B")
        w = self.const(w if trans_b else w.T, "W")
        return self.apply("Gemm", w, b, transB=trans_b, alpha=alpha, beta=beta)

    def matmul_add(self, inp, out):
        self.apply("MatMul", self.const(self.weights(out, inp).T, "W"))
        return self.apply("Add", self.const(self.weights(out, scale=0.1), "B"))

    def poly(self, coeffs, spelling):
        """sum coeffs[k] x^k, written the way `spelling` names."""
        x = self.x
        if spelling == "mul":  # Horner: ((c_d * x + c_{d-1}) * x + ...) + c_0
            acc = self.node("Mul", [x, self.const(np.float32(coeffs[-1]))])
            for k in range(len(coeffs) - 2, -1, -1):
                acc = self.node("Add", [acc, self.const(np.float32(coeffs[k]))])
                if k > 0:
                    acc = self.node("Mul", [acc, x])
            self.x = acc
        elif spelling == "pow":  # c0 + c1 * x + c2 * x ** 2 + ...: Pow with float exponents
            terms = []
            for k, c in enumerate(coeffs):
                if c == 0.0:
                    continue
                if k == 0:
                    terms.append(self.const(np.float32(c)))
                    continue
                p = x if k == 1 else self.node("Pow", [x, self.constant_node(np.float32(k))])
                terms.append(self.node("Mul", [self.const(np.float32(c)), p]))
            acc = terms[0]
            for t in terms[1:]:
                acc = self.node("Add", [acc, t])
            self.x = acc
        elif spelling == "module":  # a custom nn.Module: Neg, Div, Sub and Constant nodes
            # c0 + x * (c1 + x * (... + c_d * x)), c_d * x written as -(x / (-1 / c_d))
            acc = self.node("Neg", [self.node("Div", [x, self.constant_node(np.float32(-1.0 / coeffs[-1]))])])
            for c in reversed(coeffs[1:-1]):
                acc = self.node("Sub", [acc, self.constant_node(np.float32(-c))])
                acc = self.node("Mul", [x, acc])
            self.x = self.node("Add", [self.constant_node(np.float32(coeffs[0])), acc])
        else:
            raise ValueError(spelling)
        return self.x

    def model(self, outputs=None, opset=OPSET):
        outs = outputs or [helper.make_tensor_value_info(self.x, TensorProto.FLOAT, ["N", "classes"])]
        graph = helper.make_graph(self.nodes, "g", self.inputs, outs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="hejob-tests")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def all_ops():
    """Every supported operator: MNIST, two polynomial spellings, Gemm and MatMul+Add."""
    g = Graph("mnist", seed=7)
    g.conv(1, 4, 5, stride=2, pad=2)                       # 4x14x14
    g.batchnorm(4)
    g.apply("Mul", g.x)                                     # x * x
    g.apply("Identity")
    g.apply("AveragePool", kernel_shape=[2, 2], strides=[2, 2])  # 4x7x7
    g.conv(4, 6, 3, bias=False)                             # 6x5x5
    g.poly([0.1, 0.5, 0.2], "pow")                          # 0.1 + 0.5 x + 0.2 x ** 2
    g.apply("Flatten", axis=1)                              # 150
    g.gemm(150, 32)
    g.poly([0.05, 0.6, 0.1, -0.01], "module")
    g.apply("Reshape", g.constant_node(np.array([1, -1]), dtype=np.int64))
    g.matmul_add(32, 16)
    g.poly([0.0, 1.0, 0.25], "mul")
    g.gemm(16, 10, trans_b=0, alpha=0.5, beta=2.0)
    return g.model()


def cifar_ops():
    """CIFAR-10 with GlobalAveragePool and a Constant-node Reshape."""
    g = Graph("cifar10", seed=8)
    g.conv(3, 8, 3, pad=1)
    g.batchnorm(8)
    g.poly([0.0, 0.5, 0.25], "pow")
    g.apply("AveragePool", kernel_shape=[2, 2], strides=[2, 2])
    g.conv(8, 12, 3, stride=2)
    g.batchnorm(12)
    g.apply("Mul", g.x)
    g.apply("GlobalAveragePool")
    g.apply("Reshape", g.const(np.array([-1, 12]), dtype=np.int64))
    g.gemm(12, 10)
    return g.model()


def relu_net():
    g = Graph("mnist", seed=9)
    g.conv(1, 4, 3, stride=2)
    g.apply("Relu")
    g.apply("Flatten", axis=1)
    g.gemm(4 * 13 * 13, 10)
    return g.model()


def small_net():
    """Shallow enough for N = 8192: the encrypted runs of an imported network."""
    g = Graph("mnist", seed=11)
    g.conv(1, 3, 5, stride=2)                               # 3x12x12
    g.batchnorm(3)
    g.poly([0.2, 0.5, 0.125], "module")
    g.apply("AveragePool", kernel_shape=[2, 2], strides=[2, 2])  # 3x6x6
    g.apply("Flatten", axis=1)
    g.gemm(108, 10)
    return g.model()


def deep_net(squares=14):
    """Imports, but needs more levels than 128-bit parameters hold."""
    g = Graph("mnist", seed=10)
    g.apply("AveragePool", kernel_shape=[4, 4], strides=[4, 4])
    for _ in range(squares):
        g.conv(1, 1, 1)
        g.apply("Mul", g.x)
    g.apply("Flatten", axis=1)
    g.gemm(49, 10)
    return g.model()


def refusals():
    """Graphs each importer refusal is tested on: name -> model."""
    out = {}

    def simple(edit, dataset="mnist"):
        g = Graph(dataset, seed=3)
        edit(g)
        return g

    def tail(g, c, hw):
        g.apply("Flatten", axis=1)
        g.gemm(c * hw * hw, 10)
        return g.model()

    def maxpool(g):
        g.conv(1, 2, 3)
        g.x = g.node("MaxPool", [g.x], name="/features/3/MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    out["maxpool"] = tail(simple(maxpool), 2, 13)

    def sigmoid(g):
        g.conv(1, 2, 3)
        g.x = g.node("Sigmoid", [g.x], name="/act/Sigmoid")
    out["sigmoid"] = tail(simple(sigmoid), 2, 26)

    def grouped(g):
        g.conv(1, 2, 3)
        w = g.const(g.weights(2, 1, 3, 3), "W")
        g.x = g.node("Conv", [g.x, w], name="/grouped/Conv", kernel_shape=[3, 3], group=2)
    out["grouped"] = tail(simple(grouped), 2, 24)

    def asymmetric(g):
        w = g.const(g.weights(2, 1, 3, 3), "W")
        g.x = g.node("Conv", [g.x, w], name="/asym/Conv", kernel_shape=[3, 3], pads=[0, 0, 1, 1])
    out["asymmetric"] = tail(simple(asymmetric), 2, 27)

    def dilated(g):
        w = g.const(g.weights(2, 1, 3, 3), "W")
        g.x = g.node("Conv", [g.x, w], name="/dil/Conv", kernel_shape=[3, 3], dilations=[2, 2])
    out["dilated"] = tail(simple(dilated), 2, 24)

    def fractional_pow(g):
        g.conv(1, 2, 3)
        g.x = g.node("Pow", [g.x, g.const(np.float32(2.5))], name="/act/Pow")
    out["fractional_pow"] = tail(simple(fractional_pow), 2, 26)

    def two_tensors(g):
        a = g.conv(1, 2, 3)
        g.conv(2, 2, 1)
        g.x = g.node("Mul", [a, g.x], name="/gate/Mul")
    out["two_tensors"] = tail(simple(two_tensors), 2, 26)

    def residual(g):
        a = g.conv(1, 2, 3, pad=1)
        g.conv(2, 2, 3, pad=1)
        g.x = g.node("Add", [a, g.x], name="/res/Add")
    out["residual"] = tail(simple(residual), 2, 28)

    def pad_pool(g):
        g.conv(1, 2, 3)
        g.x = g.node("AveragePool", [g.x], name="/pool/AveragePool", kernel_shape=[2, 2],
                     strides=[2, 2], pads=[1, 1, 1, 1])
    out["pad_pool"] = tail(simple(pad_pool), 2, 14)

    def reshape_map(g):
        g.conv(1, 2, 3)
        g.x = g.node("Reshape", [g.x, g.const(np.array([1, 1, 52, 26]), dtype=np.int64)],
                     name="/view/Reshape")
        g.conv(1, 2, 3)
    out["reshape_map"] = tail(simple(reshape_map), 2, 24)

    def transpose(g):
        g.conv(1, 2, 3)
        g.x = g.node("Transpose", [g.x], name="/swap/Transpose", perm=[0, 1, 3, 2])
    out["transpose"] = tail(simple(transpose), 2, 26)

    g = Graph("mnist", seed=3)
    g.conv(1, 2, 3)
    g.apply("Flatten", axis=1)
    g.gemm(2 * 26 * 26, 10)
    g.x = g.node("Softmax", [g.x], name="/probs/Softmax", axis=1)
    out["softmax"] = g.model()

    g = Graph("mnist", seed=3)
    g.conv(1, 2, 3)
    g.apply("Flatten", axis=1)
    g.gemm(2 * 26 * 26, 7)
    out["classes"] = g.model()

    g = Graph("cifar10", seed=3)  # a CIFAR-10 graph imported as MNIST
    g.conv(3, 2, 3)
    out["wrong_input"] = tail(g, 2, 30)

    g = Graph("mnist", seed=3)
    g.conv(1, 2, 3)
    g.apply("Flatten", axis=1)
    w = g.const(g.weights(10, 2 * 26 * 26), "W")
    g.x = g.node("Gemm", [w, g.x], name="/fc/Gemm", transB=1)
    out["gemm_trans"] = g.model()
    return out


def fixtures(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    made = {"all_ops": all_ops(), "cifar_ops": cifar_ops(), "relu": relu_net(), "deep": deep_net(),
            "small": small_net()}
    made.update({f"refuse_{k}": v for k, v in refusals().items()})
    for name, m in made.items():
        onnx.save(m, os.path.join(out_dir, name + ".onnx"))
    # external weights, as PyTorch's exporter writes them: the same graph, initializers in a
    # side file; and one whose side file is named outside the model's folder
    m = all_ops()
    onnx.save(m, os.path.join(out_dir, "external.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="external.onnx.data", size_threshold=0)
    m = onnx.load(os.path.join(out_dir, "external.onnx"), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../external.onnx.data"
    onnx.save(m, os.path.join(out_dir, "refuse_escape.onnx"))
    print(json.dumps(sorted(made) + ["external", "refuse_escape"]))


def from_hejob(path, out, spelling):
    """A hejob model file as the ONNX graph PyTorch would export for it."""
    import h5py

    f = h5py.File(path, "r")
    dataset = f.attrs["dataset"]
    dataset = dataset.decode() if isinstance(dataset, bytes) else str(dataset)
    g = Graph(dataset)
    layers = f["layers"]
    for member in sorted(layers):
        lg = layers[member]
        kind = lg.attrs["kind"]
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "conv":
            w = np.asarray(lg["weight"])
            b = g.const(np.asarray(lg["bias"]), "B")
            stride, pad = int(lg.attrs["stride"]), int(lg.attrs["padding"])
            g.apply("Conv", g.const(w, "W"), b, kernel_shape=list(w.shape[2:]),
                    strides=[stride] * 2, pads=[pad] * 4)
        elif kind == "batchnorm":
            ins = [g.const(np.asarray(lg[k])) for k in ("gamma", "beta", "running_mean", "running_var")]
            g.apply("BatchNormalization", *ins, epsilon=float(lg.attrs["eps"]))
        elif kind == "activation":
            g.poly([float(c) for c in np.asarray(lg["coefficients"])], spelling)
        elif kind == "avgpool":
            k, s = int(lg.attrs["kernel"]), int(lg.attrs["stride"])
            g.apply("AveragePool", kernel_shape=[k, k], strides=[s, s])
        elif kind == "global_avgpool":  # [N, C, 1, 1]: PyTorch flattens before its Linear
            g.apply("GlobalAveragePool")
            g.apply("Flatten", axis=1)
        elif kind == "flatten":
            g.apply("Flatten", axis=1)
        elif kind == "dense":
            w = np.asarray(lg["weight"])
            g.apply("Gemm", g.const(w, "W"), g.const(np.asarray(lg["bias"]), "B"), transB=1)
        else:
            raise ValueError(f"{path}: layer kind {kind}")
    onnx.save(g.model(), out)


def load_images(dataset, data_dir, n):
    c, h, w = SHAPES[dataset]
    if dataset == "mnist":
        with gzip.open(os.path.join(data_dir, "mnist", "t10k-images-idx3-ubyte.gz")) as f:
            raw = np.frombuffer(f.read()[16:16 + n * h * w], dtype=np.uint8)
        pixels = raw.reshape(n, c, h, w)
    else:
        with open(os.path.join(data_dir, "cifar10", "test_batch.bin"), "rb") as f:
            raw = np.frombuffer(f.read(n * (1 + c * h * w)), dtype=np.uint8)
        pixels = raw.reshape(n, 1 + c * h * w)[:, 1:].reshape(n, c, h, w)
    mean, std = NORM[dataset]
    mean = np.array(mean).reshape(1, c, 1, 1)
    std = np.array(std).reshape(1, c, 1, 1)
    return (pixels.astype(np.float64) / 255.0 - mean) / std


def run(path, dataset, data_dir, n, tensor=None):
    import onnxruntime as ort

    m = onnx.load(path)
    if tensor:
        m.graph.output.insert(0, helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = load_images(dataset, data_dir, n).astype(np.float32)
    name, shape = sess.get_inputs()[0].name, sess.get_inputs()[0].shape
    if list(shape[1:]) == [SHAPES[dataset][1], SHAPES[dataset][2], SHAPES[dataset][0]]:
        x = x.transpose(0, 2, 3, 1)  # a Keras graph's NHWC input
    out = [sess.run(None, {name: x[i:i + 1]})[0].reshape(-1).astype(float).tolist() for i in range(n)]
    print(json.dumps({"logits": out}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fixtures":
        fixtures(*args)
    elif cmd == "from-hejob":
        from_hejob(*args)
    elif cmd == "run":
        run(args[0], args[1], args[2], int(args[3]), *(args[4:5]))
    else:
        sys.exit(f"unknown command {cmd}")
