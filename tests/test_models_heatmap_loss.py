"""Heatmap (eqs. 4-6), sparsity term (eq. 15) and objective (eq. 16)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from aknet_cli.models.aknet import build_aknet
from aknet_cli.models.heatmap import ChannelHeatmap
from aknet_cli.models.loss import aknet_loss, sparsity_regularizer


def test_heatmap_is_the_se_softmax_weighted_channel_sum_normalised_per_clip():
    torch.manual_seed(0)
    b, t, c, h, w = 2, 3, 32, 5, 4
    x = torch.rand(b * t, c, h, w)
    hm = ChannelHeatmap(c, reduction=16, norm="minmax")  # the threshold default: test_models_keypoints
    out = hm(x, num_segments=t)
    # Independent computation, frame by frame and position by position.
    expected = torch.empty(b * t, h, w)
    for n in range(b * t):
        z = x[n].reshape(c, -1).mean(1)  # eq. 4
        hidden = torch.clamp(hm.fc1.weight @ z + hm.fc1.bias, min=0)
        omega = torch.softmax(hm.fc2.weight @ hidden + hm.fc2.bias, dim=0)  # eq. 5
        assert abs(omega.sum().item() - 1) < 1e-5
        for i in range(h):
            for j in range(w):
                expected[n, i, j] = (omega * x[n, :, i, j]).sum()  # eq. 6
    expected = expected.view(b, t, h, w)
    for k in range(b):
        lo, hi = expected[k].min(), expected[k].max()
        expected[k] = (expected[k] - lo) / (hi - lo + hm.normalization.eps)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.shape == (b, t, h, w)
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out.flatten(1).max(1).values, torch.ones(b), atol=1e-4)


def test_sparsity_term_matches_eq15_on_a_hand_made_heatmap():
    heat = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]]])
    # 4H(1-H): 0, 0, 1, 0.75 → mean over H×W = 0.4375
    assert abs(sparsity_regularizer(heat).item() - 0.4375) < 1e-7
    assert sparsity_regularizer(torch.randint(0, 2, (2, 3, 4, 4)).float()).item() == 0.0


def test_objective_is_mean_of_two_cross_entropies_plus_sparsity():
    torch.manual_seed(1)
    logits, aux = torch.randn(4, 6), torch.randn(4, 6)
    heat = torch.rand(4, 2, 3, 3)
    y = torch.tensor([0, 5, 2, 2])
    terms = aknet_loss(logits, aux, heat, y)
    expected = (F.cross_entropy(logits, y) + F.cross_entropy(aux, y)) / 2 + (4 * heat * (1 - heat)).mean()
    torch.testing.assert_close(terms["loss"], expected)
    no_reg = aknet_loss(logits, aux, heat, y, sparsity_reg=False)
    torch.testing.assert_close(no_reg["loss"], (F.cross_entropy(logits, y) + F.cross_entropy(aux, y)) / 2)


def test_heatmap_learns_through_the_auxiliary_head_only():
    torch.manual_seed(2)
    model = build_aknet("resnet18", split="res3", alpha=0.3, num_classes=5, num_segments=2, position="none").train()
    x = torch.randn(2, 2, 3, 64, 64)
    y = torch.tensor([1, 3])
    out = model(x)
    terms = out.loss_terms(y)
    # The main head's loss cannot reach the heatmap: top-N selection is not differentiable.
    grads = torch.autograd.grad(terms["cls"], list(model.heatmap.parameters()), allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)
    # The auxiliary loss does reach the SE weights (eq. 14: H ⊙ X_l).
    terms = model(x).loss_terms(y)
    terms["aux"].backward()
    assert model.heatmap.fc1.weight.grad is not None and model.heatmap.fc1.weight.grad.abs().sum() > 0
    assert model.heatmap.fc2.weight.grad.abs().sum() > 0
