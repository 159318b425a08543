"""Export a Keras CNN with polynomial activations to ONNX (tf2onnx), for `hejob model import`.

    python3 docs/examples/export_keras.py mnist|cifar10 net.onnx
    hejob model import --onnx net.onnx --dataset mnist --out net.h5

tf2onnx keeps Keras's NHWC image as the graph input and transposes around the layers; hejob
reads either order. Train the model where the comment says, on images normalised as
`model import` assumes (per-channel mean and std, the dataset's usual ones by default).
"""
import sys

import numpy as np
import tensorflow as tf
import tf2onnx

SWISH_RG7_DEG4 = [0.1773, 0.5, 0.128, 0.0, -0.001328]  # the paper's Table 5.3


def poly(x):
    c = SWISH_RG7_DEG4
    return c[0] + c[1] * x + c[2] * x * x + c[4] * tf.pow(x, 4)


dataset, out = sys.argv[1], sys.argv[2]
shape = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}[dataset]
tf.random.set_seed(0)
inputs = tf.keras.Input(shape, name="image")
x = tf.keras.layers.Conv2D(5, 5, strides=2)(inputs)
x = tf.keras.layers.BatchNormalization()(x)
x = tf.keras.layers.Activation(poly)(x)
x = tf.keras.layers.AveragePooling2D(2)(x)
x = tf.keras.layers.Conv2D(8, 3)(x)
x = tf.keras.layers.Activation(poly)(x)
x = tf.keras.layers.Flatten()(x)
outputs = tf.keras.layers.Dense(10)(x)
model = tf.keras.Model(inputs, outputs)
# batch-norm statistics as training would leave them (here made up, so that they matter)
model.layers[2].set_weights([np.linspace(0.5, 1.5, 5), np.linspace(-0.2, 0.2, 5),
                             np.linspace(-0.1, 0.1, 5), np.linspace(0.5, 2.0, 5)])

# ... train `model` here ...

spec = (tf.TensorSpec((None, *shape), tf.float32, name="image"),)
tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=out)
print(f"wrote {out}")
