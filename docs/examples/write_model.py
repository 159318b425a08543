"""Write an hejob model file (format "hejob-model", version 1) with h5py.

Usage: python3 write_model.py OUT.h5
A PyTorch user replaces the random arrays by `state_dict()` tensors (`.double().numpy()`).
"""
import sys
import h5py
import numpy as np

rng = np.random.default_rng(0)
with h5py.File(sys.argv[1], "w") as f:
    f.attrs.update(format="hejob-model", format_version=1, dataset="mnist",
                   input_shape=[1, 28, 28], classes=[str(d) for d in range(10)],
                   preprocess_scale=1 / 255, preprocess_mean=[0.1307], preprocess_std=[0.3081])
    f.create_group("provenance").attrs["source"] = "written by docs/examples/write_model.py"
    layers = f.create_group("layers")
    def layer(i, label, kind, **attrs):
        g = layers.create_group(f"{i:03d}_{label}")
        g.attrs.update(kind=kind, **attrs)
        return g
    g = layer(0, "conv1", "conv", stride=2, padding=0)
    g["weight"], g["bias"] = rng.normal(0, 0.3, (5, 1, 5, 5)), np.zeros(5)
    g = layer(1, "bn1", "batchnorm", eps=1e-5)
    g["gamma"], g["beta"], g["running_mean"], g["running_var"] = np.ones(5), np.zeros(5), np.zeros(5), np.ones(5)
    g = layer(2, "act1", "activation", function="poly", name="square")
    g["coefficients"] = [0.0, 0.0, 1.0]
    g = layer(3, "conv2", "conv", stride=2, padding=0)
    g["weight"], g["bias"] = rng.normal(0, 0.1, (50, 5, 5, 5)).astype(np.float32), np.zeros(50)
    layer(4, "act2", "activation", function="relu", name="relu")
    layer(5, "flatten", "flatten")
    g = layer(6, "fc", "dense")
    g["weight"], g["bias"] = rng.normal(0, 0.05, (10, 800)), np.zeros(10)
