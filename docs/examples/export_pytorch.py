"""Export a PyTorch CNN with polynomial activations to ONNX, for `hejob model import`.

    python3 docs/examples/export_pytorch.py net.onnx
    hejob model import --onnx net.onnx --dataset mnist --out net.h5

The network is the paper's MNIST 3-layer CNN. Train it where the comment says (any loop over
torchvision's MNIST, normalised with mean 0.1307 and std 0.3081, the defaults of `model import`);
the polynomial is written as ordinary tensor arithmetic, and the importer reads its
coefficients back from whatever nodes the exporter made of it.
"""
import sys

import torch
from torch import nn


class Poly(nn.Module):
    """sum_k c[k] * x**k: here the paper's least-squares fit of Swish on [-7, 7], degree 4."""

    def __init__(self, coefficients):
        super().__init__()
        self.c = coefficients

    def forward(self, x):
        return self.c[0] + sum(c * x**k for k, c in enumerate(self.c) if k > 0)


SWISH_RG7_DEG4 = [0.1773, 0.5, 0.128, 0.0, -0.001328]  # Table 5.3; `hejob fit` gives more digits

torch.manual_seed(0)
net = nn.Sequential(
    nn.Conv2d(1, 5, 5, stride=2),  # 5 x 12 x 12
    nn.BatchNorm2d(5),
    Poly(SWISH_RG7_DEG4),
    nn.Conv2d(5, 50, 5, stride=2),  # 50 x 4 x 4
    nn.BatchNorm2d(50),
    Poly(SWISH_RG7_DEG4),
    nn.Flatten(),
    nn.Linear(800, 10),
)

# ... train `net` here ...

net.eval()  # batch norms use their running statistics
torch.onnx.export(net, (torch.zeros(1, 1, 28, 28),), sys.argv[1],
                  input_names=["image"], output_names=["logits"])
print(f"wrote {sys.argv[1]}")
