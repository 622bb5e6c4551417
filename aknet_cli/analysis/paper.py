"""The paper's reference numbers (Chen et al., AK-Net), typed once.

Everything that compares against the paper (``aknet flops --table ii``, ``aknet ablate``, the
docs) reads these tables; no number of the paper is typed anywhere else. Values are exactly
as printed (top-1 in %, GFLOPs per view as printed; ``views`` is the ``×k`` multiplier).

Ablations (Tables IV–VI) are top-1 on Something-Something V2, one clip, centre crop
(§IV-C). Tables IV and V split at ``res2`` (§IV-C); Table VI does not name its split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: §IV-A/B: the paper's default setting (ResNet-50, 8 frames, 224² centre crop, split res4, α = 30%).
DEFAULTS: dict[str, Any] = {"frames": 8, "size": 224, "split": "res4", "alpha": 0.3, "views": "1x1"}


# ------------------------------------------------------------------------------ Table II
@dataclass(frozen=True)
class TableIIRow:
    """One row of Table II (Something-Something V1 & V2)."""

    method: str
    backbone: str
    pretrain: str
    frames: str  #: as printed, e.g. ``"8"``, ``"32×2"``, ``"8+12"``
    gflops: float  #: per view, as printed (``153×2`` -> 153 with ``views=2``)
    views: int
    sthv1: float | None
    sthv2: float | None
    #: our backbone and split for the rows ``aknet flops --table ii`` counts, else None
    ours: tuple[str, str] | None = None


def _r(method, backbone, pretrain, frames, gflops, views, v1, v2, ours=None) -> TableIIRow:
    return TableIIRow(method, backbone, pretrain, frames, float(gflops), views, v1, v2, ours)


TABLE_II: tuple[TableIIRow, ...] = (
    _r("I3D", "3D ResNet50", "K400", "32×2", 153, 2, 41.6, None),
    _r("Non-local I3D", "3D ResNet50", "K400", "32×2", 168, 2, 44.4, None),
    _r("I3D+GCN+NL", "3D ResNet50", "K400", "32×2", 303, 2, 46.1, None),
    _r("ECO(En)", "BNInception+3D ResNet18", "K400", "92", 267, 1, 46.4, None),
    _r("S3D-G", "Inception V1", "IN", "64", 71, 1, 48.2, None),
    _r("TSN", "ResNet50", "IN", "8", 33.2, 1, 19.7, 27.8),
    _r("TRN", "BN-Inception", "IN", "8", 16, 1, 34.4, 48.8),
    _r("TAM", "bLResNet50", "IN", "16×2", 47.7, 2, 48.4, 61.7),
    _r("TAN (8)", "ResNet50", "IN", "8", 33, 1, 46.5, 60.5),
    _r("TAN (16)", "ResNet50", "IN", "16", 66, 1, 47.6, 62.5),
    _r("TEINet (8)", "ResNet50", "IN", "8", 33, 1, 47.4, 61.3),
    _r("TEINet (16)", "ResNet50", "IN", "16", 66, 1, 49.9, 62.1),
    _r("GST (8)", "ResNet50", "IN", "8", 29, 1, 47.0, 61.6),
    _r("GST (16)", "ResNet50", "IN", "16", 59, 1, 48.6, 62.6),
    _r("STM (8)", "ResNet50", "IN", "8×30", 33, 30, 46.4, 59.0),
    _r("STM (16)", "ResNet50", "IN", "16×30", 67, 30, 50.7, 64.2),
    _r("V4D", "ResNet50", "IN", "8×4", 167.6, 1, 50.4, None),
    _r("CoConv", "GoogleNet", "IN", "16", 18, 1, 45.5, None),
    _r("RubiksNet", "ResNet50", "IN", "8", 15.8, 1, 46.4, 59.0),
    _r("SmallBigNet", "ResNet50", "IN", "8+16", 157, 1, 50.4, 63.3),
    _r("TSM", "ResNet50", "IN", "8", 33, 1, 45.6, 59.1, ("tsm_resnet50", "none")),
    _r("TDN", "ResNet50", "IN", "8", 36, 1, 52.3, 64.0, ("tdn_resnet50", "none")),
    _r("AR-Net", "ResNet50", "IN", "8", 41.4, 1, 18.9, None),
    _r("AdaFuse", "ResNet50", "IN", "8", 31.5, 1, 46.8, 59.8),
    _r("AdaFocus", "ResNet50", "IN", "8+12", 33.7, 1, 48.1, 60.7),
    _r("TimeSformer", "ViT", "IN", "8×3", 590, 1, None, 59.5),
    _r("TimeSformer-HR", "ViT", "IN", "16×3", 5110, 1, None, 62.5),
    _r("TimeSformer-L", "ViT", "IN", "96×3", 7140, 1, None, 62.3),
    _r("Swin Transformer", "Swin-B", "K400", "32×3", 455, 3, None, 69.6),
    _r("Ours_TSM", "ResNet50", "IN", "8", 28, 1, 47.0, 60.2, ("tsm_resnet50", "res4")),
    _r("Ours_TDN", "ResNet50", "IN", "8", 31, 1, 52.5, 64.3, ("tdn_resnet50", "res4")),
)


def table_ii_row(method: str) -> TableIIRow:
    for row in TABLE_II:
        if row.method == method:
            return row
    raise KeyError(method)


def table_ii_counted() -> dict[str, tuple[str, str, float]]:
    """The rows we can count ourselves: ``method -> (backbone, split, paper GFLOPs)``."""
    return {r.method: (r.ours[0], r.ours[1], r.gflops) for r in TABLE_II if r.ours is not None}


# ----------------------------------------------------------------------------- Table III
#: Table III, Diving48 (V2 annotations): ``method -> (pretrain, frames as printed, top-1)``.
TABLE_III: dict[str, tuple[str, str, float]] = {
    "TimeSformer": ("IN-21K", "8×3", 75.0),
    "TimeSformer-HR": ("IN-21K", "16×3", 78.0),
    "TimeSformer-L": ("IN-21K", "96×3", 81.0),
    "I3D": ("K400", "8×1", 48.3),
    "ST-S3D": ("K400", "8×1", 50.6),
    "SlowFast,RN101": ("K400", "16×3", 77.6),
    "TSN": ("IN", "3×1", 52.5),
    "GST": ("IN", "8×1", 78.9),
    "TSM": ("IN", "8×1", 76.9),
    "TDN": ("IN", "8×1", 80.5),
    "Ours_TSM": ("IN", "8×1", 79.3),
    "Ours_TDN": ("IN", "8×1", 81.7),
}


# ------------------------------------------------------------------------ Tables IV-VI
@dataclass(frozen=True)
class AblationRow:
    """One row of an ablation table: its name, the AK-Net switches it sets, the paper's top-1.

    ``switches`` are :class:`~aknet_cli.models.aknet.AKNetConfig` fields.
    """

    name: str
    switches: dict[str, Any]
    paper_top1: float


#: Table IV (split res2): Q = 1-D subnet, R = ranking, r_e = sparsity term, T = transform net,
#: concat = GAP(X_l) concatenated before the classifier (eq. 13).
TABLE_IV: tuple[AblationRow, ...] = (
    AblationRow("Q only", {"split": "res2", "ranking": False, "sparsity_reg": False, "position": "none", "concat_gap": False}, 33.1),
    AblationRow("Q+R", {"split": "res2", "ranking": True, "sparsity_reg": False, "position": "none", "concat_gap": False}, 45.8),
    AblationRow("Q+R+r_e", {"split": "res2", "ranking": True, "sparsity_reg": True, "position": "none", "concat_gap": False}, 46.0),
    AblationRow("Q+R+T", {"split": "res2", "ranking": True, "sparsity_reg": False, "position": "transform", "concat_gap": False}, 46.9),
    AblationRow("Q+R+T+concat", {"split": "res2", "ranking": True, "sparsity_reg": False, "position": "transform", "concat_gap": True}, 47.1),
    AblationRow("all", {"split": "res2", "ranking": True, "sparsity_reg": True, "position": "transform", "concat_gap": True}, 47.3),
)

#: Table V (split res2, ranking on): the position/feature transform variants.
TABLE_V: tuple[AblationRow, ...] = (
    AblationRow("baseline", {"split": "res2", "ranking": True, "position": "none"}, 45.3),
    AblationRow("+ learnable embedding", {"split": "res2", "ranking": True, "position": "embedding"}, 46.1),
    AblationRow("+ feature transform", {"split": "res2", "ranking": True, "position": "transform"}, 46.9),
)

#: Table VI: top-1 against the sampling rate α. "baseline" is AK-Net without ranking and
#: transform; "ours" the full model. ``{alpha: (baseline, ours)}``.
TABLE_VI: dict[float, tuple[float, float]] = {
    0.1: (32.8, 43.2),
    0.3: (34.5, 46.9),
    0.5: (34.9, 48.58),
    0.7: (34.7, 47.5),
    1.0: (36.2, 44.3),
}
TABLE_VI_SWITCHES: dict[str, dict[str, Any]] = {
    "baseline": {"ranking": False, "position": "none"},
    "ours": {"ranking": True, "position": "transform"},
}


def table_vi_rows() -> tuple[AblationRow, ...]:
    """Table VI as ablation rows, baseline then ours, α ascending."""
    rows = []
    for i, variant in enumerate(("baseline", "ours")):
        for alpha, tops in TABLE_VI.items():
            rows.append(AblationRow(f"{variant} α={alpha:g}", {**TABLE_VI_SWITCHES[variant], "alpha": alpha}, tops[i]))
    return tuple(rows)


ABLATION_TABLES: dict[str, tuple[AblationRow, ...]] = {
    "iv": TABLE_IV,
    "v": TABLE_V,
    "vi": table_vi_rows(),
}
