"""The auxiliary head (eq. 14) and the final head (eq. 13) against a hand computation in NumPy."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aknet_cli.models.heads import AuxiliaryHead, PointHead


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def _conv3x3_s2(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A 3×3 convolution, stride 2, zero padding 1, no bias, written out: (C, H, W) -> (C', H', W')."""
    c, h, wd = x.shape
    pad = np.zeros((c, h + 2, wd + 2))
    pad[:, 1:-1, 1:-1] = x
    ho, wo = (h - 1) // 2 + 1, (wd - 1) // 2 + 1
    out = np.zeros((w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = pad[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]  # (C, 3, 3)
            out[:, i, j] = np.tensordot(w, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out


def _bn_relu(x: np.ndarray, bn: nn.BatchNorm2d) -> np.ndarray:
    scale = _f64(bn.weight) / np.sqrt(_f64(bn.running_var) + bn.eps)
    y = (x - _f64(bn.running_mean)[:, None, None]) * scale[:, None, None] + _f64(bn.bias)[:, None, None]
    return np.maximum(y, 0)


def test_auxiliary_head_weights_features_by_the_heatmap_per_frame():
    """y_aux: X̃ = H ⊙ X_l (eq. 14, the same H(i, j) for every channel), two stride-2
    conv-BN-ReLU, GAP, FC per frame, then the mean over the T frames of each clip."""
    b, t, c, hidden, k, side = 2, 3, 4, 5, 6, 7
    torch.manual_seed(0)
    head = AuxiliaryHead(c, k, t, hidden=hidden)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    head.eval()
    feats = torch.randn(b * t, c, side, side)
    heat = torch.rand(b, t, side, side)
    heat[0, 1] = 0.0  # a frame the heatmap switches off entirely
    with torch.no_grad():
        got = head(feats, heat)
    assert got.shape == (b, k)

    conv1, bn1, _, conv2, bn2, _ = head.convs
    x, h = _f64(feats), _f64(heat)
    expected = np.zeros((b, k))
    for i in range(b):
        for j in range(t):
            weighted = x[i * t + j] * h[i, j][None]  # frame j of clip i: (C, H, W) ⊙ (H, W)
            y = _bn_relu(_conv3x3_s2(weighted, _f64(conv1.weight)), bn1)  # 4×4
            y = _bn_relu(_conv3x3_s2(y, _f64(conv2.weight)), bn2)  # 2×2
            expected[i] += (_f64(head.fc.weight) @ y.mean(axis=(1, 2)) + _f64(head.fc.bias)) / t
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_point_head_concatenates_gap_context_before_pooled_points():
    """y_cls = fc(concat(GAP(X_l), mean over points of e_f)) (eq. 13), context columns first."""
    torch.manual_seed(0)
    head = PointHead(point_channels=6, context_channels=4, num_classes=3, dropout=0.5).eval()
    points, context = torch.randn(2, 6, 9), torch.randn(2, 4)
    with torch.no_grad():
        got = head(points, context)
    w, bias = _f64(head.fc.weight), _f64(head.fc.bias)
    pooled = np.concatenate([_f64(context), _f64(points).mean(axis=2)], axis=1)
    np.testing.assert_allclose(got.numpy(), pooled @ w.T + bias, rtol=1e-5, atol=1e-6)
