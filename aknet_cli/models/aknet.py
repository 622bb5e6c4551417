"""AK-Net: keypoint selection on a split backbone + point cloud classification (paper §III)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._registry import create_backbone
from .._validate import check_fields, ranged
from ..exceptions import ConfigError
from .backbone import SPLIT_STAGES, VideoBackbone, check_stage
from .kernels_1d import STRIDE_MODES, ConversionRecord, Converter
from .heads import AuxiliaryHead, PointHead
from .heatmap import HEAT_NORMS, ChannelHeatmap
from .loss import aknet_loss
from .position import TRANSFORM_FORMS, PositionEmbedding, TransformNet
from .selection import KeypointSelector

POSITION_MODES = ("none", "embedding", "transform")
#: Rank of the ``uv`` transform net ``A = I + U Vᵀ`` when its rank is ``"auto"``, wherever it is
#: cheaper than the full matrix (:func:`resolve_transform`). The paper's full ``(C+3)²`` matrix
#: (``transform_rank=None``) reads ~1.1 GB of weights per clip at res4 and left AK-Net-TSM-R50
#: slower than TSM-R50 on CPU; rank 64 made it faster at no measured accuracy cost on
#: synth-sth (docs/bench.md).
DEFAULT_TRANSFORM_RANK = 64
#: Rank of the ``core`` transform net ``A = I + Q G Pᵀ`` when its rank is ``"auto"``.
DEFAULT_CORE_RANK = 64
#: The form ``transform = "auto"`` stands for (:data:`~aknet_cli.models.position.TRANSFORM_FORMS`).
DEFAULT_TRANSFORM_FORM = "core"


@dataclass
class AKNetOutput:
    """What a training-mode forward returns.

    Attributes:
        logits: ``(B, K)`` final prediction ``y_cls``.
        aux_logits: ``(B, K)`` auxiliary prediction ``y_aux``.
        heatmap: ``(B, T, H, W)`` in [0, 1].
        keypoints: ``(B, N, 3)`` int64 ``(t, y, x)`` in ranked order.
    """

    logits: torch.Tensor
    aux_logits: torch.Tensor
    heatmap: torch.Tensor
    keypoints: torch.Tensor
    sparsity_reg: bool = True

    def loss_terms(self, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """All terms of eq. 16: ``loss``, ``cls``, ``aux``, ``sparsity``."""
        return aknet_loss(self.logits, self.aux_logits, self.heatmap, target, sparsity_reg=self.sparsity_reg)

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        """``(CE(y_cls) + CE(y_aux)) / 2 + r_e`` (eq. 16)."""
        return self.loss_terms(target)["loss"]


class SplitFeatures(nn.Module):
    """``F`` (eq. 3): the backbone's stages up to and including the split stage."""

    def __init__(self, backbone: VideoBackbone, split: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.split = split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clips in the backbone's input layout → ``(B*T, C, H, W)``."""
        return self.backbone.forward_until(x, self.split)


@dataclass(frozen=True)
class AKNetConfig:
    """Every switch of the model. Save ``asdict(model.config)``: the built model's copy holds
    the numbers actually used (``tau``, ``transform`` and ``transform_rank`` resolved from
    ``"auto"``, see :func:`resolve_tau` and :func:`resolve_transform`). Read a saved one back
    with :meth:`from_record`."""

    split: str = "res4"
    alpha: float = ranged(0.3, gt=0.0, le=1.0, why="the share of positions kept as keypoints")
    tau: float | str = "auto"
    ranking: bool = True
    position: str = "transform"
    transform: str = "auto"
    transform_rank: int | str | None = "auto"
    sparsity_reg: bool = True
    heat_norm: str = "threshold"
    heat_scale: float = ranged(0.1, gt=0.0)
    concat_gap: bool = True
    stride_mode: str = "area"
    reduction: int = ranged(16, ge=1)
    dropout: float = ranged(0.5, ge=0.0, lt=1.0)
    max_input_size: int = ranged(320, ge=32)

    @classmethod
    def from_record(cls, switches: dict[str, Any]) -> "AKNetConfig":
        """The config a checkpoint recorded. Checkpoints written before the transform net's
        forms had names record no ``transform``: their rank meant ``A = I + U Vᵀ`` (``uv``),
        and no rank (``None``) the paper's full matrix."""
        switches = dict(switches)
        if "transform" not in switches:
            switches["transform"] = "full" if switches.get("transform_rank", "auto") is None else "uv"
        return cls(**switches)

    def validate(self) -> "AKNetConfig":
        check_fields(self)  # types and the ranges declared above
        check_stage(self.split, SPLIT_STAGES)
        check_tau(self.tau)
        if self.position not in POSITION_MODES:
            raise ConfigError(f"position must be one of {', '.join(POSITION_MODES)}, got {self.position!r}")
        if self.transform_rank not in (None, "auto") and (isinstance(self.transform_rank, bool)
                                                        or not isinstance(self.transform_rank, int)
                                                        or self.transform_rank < 1):
            raise ConfigError(f"transform_rank must be 'auto', a positive integer or None (the paper's full "
                              f"matrix), got {self.transform_rank!r}")
        if self.transform not in ("auto", *TRANSFORM_FORMS):
            raise ConfigError(f"transform must be 'auto' or one of {', '.join(TRANSFORM_FORMS)}, got {self.transform!r}")
        if self.transform == "full" and self.transform_rank not in (None, "auto"):
            raise ConfigError(f"transform = 'full' is the paper's (C+3)² matrix and takes no rank, got transform_rank "
                              f"{self.transform_rank!r}; drop the rank or choose transform 'core' or 'uv'")
        if self.transform in ("uv", "core") and self.transform_rank is None:
            raise ConfigError(f"transform = {self.transform!r} needs a rank, got transform_rank none (the paper's full "
                              f"matrix); use transform 'full', or a rank ('auto' or a number)")
        if self.heat_norm not in HEAT_NORMS:
            raise ConfigError(f"heat_norm must be one of {', '.join(HEAT_NORMS)}, got {self.heat_norm!r}")
        if self.stride_mode not in STRIDE_MODES:
            raise ConfigError(f"stride_mode must be one of {', '.join(STRIDE_MODES)}, got {self.stride_mode!r}")
        return self


def check_tau(tau: Any) -> float | str:
    """``tau`` is ``"auto"`` or a finite number > 0 (bools are refused: ``True`` is not a τ)."""
    if tau == "auto":
        return tau
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise ConfigError(f"tau must be 'auto' or a number > 0, got {tau!r}")
    return tau


def resolve_tau(tau: float | str, max_grid: int) -> float:
    """The number ``"auto"`` stands for: ``h + w − 1`` of the largest split map the model
    accepts (``max_grid × max_grid``, from ``max_input_size``). Any ``τ ≥ h + w − 1`` ranks a
    map identically (frames contiguous, ``x + y`` within each), so this one number ranks every
    input up to ``max_input_size`` exactly as ``h + w − 1`` of its own map would, and it can be
    recorded in checkpoints before any input is seen."""
    from .selection import frame_contiguous_tau

    return float(frame_contiguous_tau(max_grid, max_grid)) if tau == "auto" else float(tau)


def resolve_transform(form: str, rank: int | str | None, channels: int) -> tuple[str, int | None]:
    """The form and rank that ``"auto"`` stands for on a split with ``channels`` channels.

    ``transform = "auto"`` is :data:`DEFAULT_TRANSFORM_FORM` (``full`` when the rank is ``None``).
    An ``"auto"`` rank is :data:`DEFAULT_CORE_RANK` for ``core`` (at most ``C + 3``, where the
    bases span everything) and :data:`DEFAULT_TRANSFORM_RANK` for ``uv``, unless ``U`` and ``V``
    of that rank would have at least as many entries as the full ``(C+3)²`` matrix (``2r ≥ C+3``),
    where the low-rank form saves nothing and the paper's full matrix is built instead. That is
    the case on a 64-channel split (ResNet-18's res2), where on synth-sth rank-64 ``uv`` also
    trained far worse than the full matrix (Table V, 2 epochs: 40.8 against 64.2 top-1;
    docs/model.md). An explicit form and rank are kept as given.

    Returns:
        ``(form, rank)``, ``rank`` ``None`` exactly when ``form`` is ``"full"``.
    """
    if rank is None or form == "full":
        return "full", None
    form = DEFAULT_TRANSFORM_FORM if form == "auto" else form
    if rank != "auto":
        return form, int(rank)
    if form == "core":
        return form, min(DEFAULT_CORE_RANK, channels + 3)
    return (form, DEFAULT_TRANSFORM_RANK) if 2 * DEFAULT_TRANSFORM_RANK < channels + 3 else ("full", None)


class AKNet(nn.Module):
    """Action Keypoint Network.

    ``x → F → X_l → heatmap H → top-N keypoints → rank (eq. 7) → transform T (eqs. 8-10)
    → Q = M(P) (eqs. 11-12) → fc(concat(GAP(X_l), pooled e_f)) (eq. 13)``, plus the auxiliary
    head on ``H ⊙ X_l`` (eq. 14) in training.

    Build it with :func:`build_aknet`. Submodules: ``features`` (F), ``heatmap``,
    ``selector``, ``position`` (T, an embedding, or ``None``), ``point_net`` (Q, one entry per
    converted stage), ``head``, ``aux_head``.

    Forward:
        * ``eval()``: ``model(x)`` → logits ``(B, K)``; ``model(x, return_keypoints=True)`` →
          ``(logits, keypoints)`` with keypoints ``(B, N, 3)`` int64 ``(t, y, x)`` on the split
          feature map, in ranked order.
        * ``train()``: an :class:`AKNetOutput` with ``logits``, ``aux_logits``, ``heatmap``,
          ``keypoints`` and ``loss(target)``.
    """

    def __init__(self, backbone: VideoBackbone, config: AKNetConfig) -> None:
        super().__init__()
        config.validate()
        grid = math.ceil(config.max_input_size / backbone.specs[config.split].stride)
        # Resolved once, so the config (and every checkpoint saved from it) holds the number used.
        form, rank = resolve_transform(config.transform, config.transform_rank, backbone.specs[config.split].channels)
        config = dataclasses.replace(config, tau=resolve_tau(config.tau, grid), transform=form, transform_rank=rank)
        self.config = config
        self.num_segments = backbone.num_segments
        self.num_classes = backbone.num_classes
        split = config.split
        channels = backbone.specs[split].channels

        converter = Converter(hook=backbone.convert_1d, stride_mode=config.stride_mode)
        self.point_net = nn.ModuleDict({name: converter(stage, name) for name, stage in backbone.stages_after(split)})
        self.conversion: list[ConversionRecord] = converter.records
        # P now lives on as Q; keep only F in the backbone so no dead weights remain.
        for name, _ in backbone.stages_after(split):
            backbone.stages[name] = nn.Identity()
        backbone.fc = nn.Identity()
        self.features = SplitFeatures(backbone, split)

        self.heatmap = ChannelHeatmap(channels, reduction=config.reduction, alpha=config.alpha,
                                      norm=config.heat_norm, scale=config.heat_scale)
        self.selector = KeypointSelector(config.alpha, config.tau, config.ranking)
        if config.position == "transform":
            self.position: nn.Module | None = TransformNet(channels, rank=config.transform_rank, form=config.transform)
        elif config.position == "embedding":
            grid = math.ceil(config.max_input_size / backbone.specs[split].stride)
            self.position = PositionEmbedding(channels, backbone.num_segments, grid)
        else:
            self.position = None
        out_channels = backbone.specs["res5"].channels
        self.head = PointHead(out_channels, channels if config.concat_gap else 0, self.num_classes, config.dropout)
        self.aux_head = AuxiliaryHead(channels, self.num_classes, self.num_segments)

    @property
    def backbone(self) -> VideoBackbone:
        return self.features.backbone

    def forward(self, x: torch.Tensor, return_keypoints: bool = False):
        feats = self.features(x)  # (B*T, C, H, W)
        logits, scores, coords = self.after_split(feats)
        if self.training:  # only the loss and the auxiliary attention need H in [0, 1]
            heat = self.heatmap.normalization(scores)
            aux = self.aux_head(feats, heat)
            return AKNetOutput(logits, aux, heat, coords, self.config.sparsity_reg)
        if return_keypoints:
            return logits, coords
        return logits

    def after_split(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything after ``F``: heatmap, selection and ranking, transform, ``Q``, head.

        Args:
            feats: ``(B*T, C, H, W)`` split features ``X_l``.

        Returns:
            ``logits (B, K)``, raw heatmap scores ``(B, T, H, W)`` fp32, keypoints ``(B, N, 3)``.
        """
        c, h, w = (int(s) for s in feats.shape[1:])  # the batch stays symbolic (torch.export)
        t = self.num_segments
        # GAP(X_l) per frame, fp32: eq. 4's Z for the heatmap and, averaged over frames, eq. 13's
        # context. One pass over the feature map serves both (at res2 it is 25 MB per clip).
        frame_means = feats.float().mean(dim=(2, 3))
        scores = self.heatmap(feats, t, normalize=False, frame_means=frame_means)  # (B, T, H, W) fp32, eq. 6
        points, coords = self.selector(feats.reshape(-1, t, c, h, w), scores)
        if self.position is not None:
            points = self.position(points, coords, (h, w))  # the map size as ints: no host sync
        for stage in self.point_net.values():
            points = stage(points)
        context = frame_means.reshape(-1, t, c).mean(dim=1) if self.config.concat_gap else None
        return self.head(points, context), scores, coords

    def conversion_summary(self) -> list[dict[str, Any]]:
        """What ``M`` did to each module of ``P`` (for reports and checkpoints)."""
        return [r.__dict__ for r in self.conversion]


def build_aknet(
    backbone: str | VideoBackbone = "tsm_resnet50",
    *,
    split: str = "res4",
    alpha: float = 0.3,
    num_classes: int = 174,
    num_segments: int = 8,
    pretrained: bool | str = False,
    backbone_kwargs: dict[str, Any] | None = None,
    **switches: Any,
) -> AKNet:
    """Build AK-Net on a registered backbone (or on a backbone instance, e.g. a trained one).

    Args:
        backbone: an ``aknet.backbones`` name, or a :class:`VideoBackbone` whose stages after
            ``split`` are converted (the instance is consumed).
        split: ``res2``, ``res3`` or ``res4``: where keypoints are selected.
        alpha: point sampling rate ``α ∈ (0, 1]``.
        num_classes, num_segments, pretrained: passed to :func:`create_backbone` when
            ``backbone`` is a name.
        backbone_kwargs: extra keyword arguments for the backbone factory.
        **switches: the ablation switches of :class:`AKNetConfig`: ``tau`` (``"auto"``, the
            default, keeps each frame's points together; or a number), ``ranking``,
            ``position`` (none|embedding|transform), ``transform`` (the form of eq. 10's
            matrix: ``"auto"``, ``"core"``, ``"uv"`` or ``"full"``, see
            :data:`~aknet_cli.models.position.TRANSFORM_FORMS`), ``transform_rank`` (``"auto"``
            by default, see :func:`resolve_transform`; an int; ``None`` for the paper's full
            matrix), ``sparsity_reg``,
            ``heat_norm`` (threshold|minmax, the heatmap's normalisation), ``heat_scale``,
            ``concat_gap``, ``stride_mode`` (area|axis, how 2-D strides become 1-D strides),
            plus ``reduction``, ``dropout``, ``max_input_size``.

    Returns:
        An :class:`AKNet`.
    """
    known = set(AKNetConfig.__dataclass_fields__) - {"split", "alpha"}
    unknown = sorted(set(switches) - known)
    if unknown:
        raise ConfigError(f"unknown AK-Net option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    config = AKNetConfig(split=split, alpha=alpha, **switches).validate()
    if isinstance(backbone, str):
        backbone = create_backbone(
            backbone, num_classes=num_classes, num_segments=num_segments, pretrained=pretrained,
            **(backbone_kwargs or {}),
        )
    return AKNet(backbone, config)
