"""Issue #9 item 1: which area-rule reduction stays closest to the 2-D block it replaces.

On inputs constant along the summed axis, compare the converted first res5 block of a
ResNet-50 (random weights, non-trivial BN statistics) with the 2-D block's output averaged
over the same groups of points. Run: .venv/bin/python studies/area_stride_fidelity.py
"""
import torch, torchvision
from torch import nn
from torch.nn import functional as F
from aknet_cli.models.kernels_1d import Converter
torch.manual_seed(0)
rn = torchvision.models.resnet50()
block = rn.layer4[0]
for m in block.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
block.eval()
L = 64
line = torch.relu(torch.randn(4, 1024, L))
img = line.unsqueeze(-1).expand(4, 1024, L, 16).contiguous()
with torch.no_grad():
    y2 = block(img)[..., 4]                     # (4, 2048, L/2): the 2-D block, one interior column
    ref = F.avg_pool1d(y2, 2, 2, ceil_mode=True)  # 2-D result on the area grid (one output per 4 points)
    variants = {}
    c = Converter(stride_mode="area")(block, "b").eval(); variants["c: conv s2 + mean 2 (chosen)"] = c
    a = Converter(stride_mode="axis")(block, "b").eval()
    a.conv2.stride = (4,); a.downsample[0].stride = (4,); variants["a: conv s4 (old area)"] = a
    d = Converter(stride_mode="area")(block, "b").eval()
    d.conv2.stride = (1,); d.conv2.pool, d.conv2.pool_first = 4, True; variants["d: mean 4 + conv s1"] = d
    for k, v in variants.items():
        out = v(line)
        err = ((out - ref).norm() / ref.norm()).item()
        cos = F.cosine_similarity(out.flatten(1), ref.flatten(1)).mean().item()
        print(f"{k:32s} rel.err {err:.3f} cos {cos:.3f}")
