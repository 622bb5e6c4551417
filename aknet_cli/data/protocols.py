"""Test (and training) protocols, each named after the code base it reproduces.

A published number is reproduced only under its authors' own protocol: which frames a clip is
made of, how a frame is resized, where the crops sit, and how the views' scores are combined.
Each :class:`Protocol` states those rules and where in the official code each comes from
(:attr:`Protocol.sources`, written into ``aknet eval``'s ``metrics.json``). The rules
themselves live in :mod:`~aknet_cli.data.sampling` (frames) and
:mod:`~aknet_cli.data.transforms` (resize, crops); the engine averages the views.

* ``tsm``: test starts ``int(t/2 + t*x)``, ``t = (n - L + 1)/T``, the second clip ``int(t*x)``;
  PIL bilinear resize, long side floored; centre crop rounded; three crops at left ``0, 4s, 2s``
  (``s = (W - R)//4``), top ``2((H - R)//4)``; the mean logit of the views.
* ``tdn``: TSM's starts, all 0 when ``n <= T + L - 1``; resize and crops as ``tsm``; the mean
  softmax of the views.
* ``mmaction2``: TSM's starts with ``L = 1``; bilinear resize without antialiasing, long side
  rounded; centre crop floored; three crops at ``0, 2s', s'`` along the long side
  (``s' = (long - R)//2``); the mean softmax.
* ``aknet``: ``floor(n/T*(x + o))``, ``o = (k + 1/2)/K`` for clip ``k`` of ``K``, windows centred;
  antialiased tensor resize; centre crop rounded; three crops at the start, middle and end of
  the long side; the mean softmax.

``L`` is the frames a segment brings (1, TDN: 5), ``T`` the segments, ``n`` the clip's frames,
``R`` the resize target (three crops are ``R × R``, at full resolution).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..exceptions import ConfigError

#: Every protocol by name; ``aknet eval --protocol`` and ``data.protocol`` take these.
PROTOCOL_NAMES = ("tsm", "tdn", "mmaction2", "aknet")


@dataclass(frozen=True)
class Protocol:
    """The rules of one code base's test (and training) pipeline.

    Attributes:
        name: ``tsm``, ``tdn``, ``mmaction2`` or ``aknet``.
        title: the code base, as the output names it.
        sampling: the frame-index rule of :func:`~aknet_cli.data.sampling.sample_indices`.
        resize: ``pil`` (PIL bilinear, as torchvision's ``Resize`` does on PIL images),
            ``bilinear`` (no antialiasing, as OpenCV's ``INTER_LINEAR``) or ``antialias``
            (torchvision's tensor resize with antialiasing).
        long_side: ``floor`` (torchvision: ``int(R * long / short)``) or ``round`` (mmcv:
            ``int(long * R / short + 0.5)``).
        centre: ``round`` (torchvision's ``CenterCrop``) or ``floor`` (mmaction2's).
        three_crops: ``quarters`` (TSM/TDN's ``GroupFullResSample``), ``halves``
            (mmaction2's ``ThreeCrop``) or ``ends`` (aknet: start, middle, end of the long side).
        average: ``logits`` (mean logit over the views) or ``prob`` (mean softmax).
        max_clips: clips per video the code base tests (``None``: any number).
        windows: whether the protocol reads several frames per segment (TDN's windows).
        sources: rule → the official file and function it reproduces.
        two_clips_note: what 2 clips add beyond the code base, where it tests one only.
    """

    name: str
    title: str
    sampling: str
    resize: str
    long_side: str
    centre: str
    three_crops: str
    average: str
    max_clips: int | None = 2
    windows: bool = True
    sources: dict[str, str] = field(default_factory=dict)
    two_clips_note: str = ""

    def describe(self, clips: int = 1) -> dict[str, object]:
        """What ``metrics.json`` records of the protocol run with ``clips`` clips per video."""
        notes = [self.two_clips_note] if clips == 2 and self.two_clips_note else []
        return {"name": self.name, "code": self.title, "rules": dict(self.sources), "notes": notes}


_TSM_DS = "temporal-shift-module ops/dataset.py"
_TSM_TF = "temporal-shift-module ops/transforms.py"
_TDN_DS = "TDN ops/dataset.py"
_TDN_TF = "TDN ops/transforms.py"
_MM_LOAD = "mmaction2 mmaction/datasets/transforms/loading.py"
_MM_PROC = "mmaction2 mmaction/datasets/transforms/processing.py"

PROTOCOLS: dict[str, Protocol] = {
    "tsm": Protocol(
        "tsm", "TSM (mit-han-lab/temporal-shift-module, test_models.py)", "tsm", "pil", "floor", "round",
        "quarters", "logits",
        sources={
            "test sampling": f"{_TSM_DS}: TSNDataSet._get_test_indices (segment centres)",
            "two clips": f"{_TSM_DS}: TSNDataSet._get_test_indices with twice_sample (centres, then segment starts)",
            "training sampling": f"{_TSM_DS}: TSNDataSet._sample_indices",
            "frames of a segment": f"{_TSM_DS}: TSNDataSet.get (the index advances while inside the clip)",
            "resize": f"{_TSM_TF}: GroupScale (torchvision Resize of PIL images, bilinear)",
            "centre crop": f"{_TSM_TF}: GroupCenterCrop (torchvision CenterCrop)",
            "three crops": f"{_TSM_TF}: GroupFullResSample (test_models.py --test_crops 3 --full_res)",
            "averaging": "temporal-shift-module test_models.py: eval_video (mean of the views' logits, no softmax)",
        }),
    "tdn": Protocol(
        "tdn", "TDN (MCG-NJU/TDN, test_models_center_crop.py / test_models_three_crops.py)", "tdn", "pil", "floor",
        "round", "quarters", "prob",
        sources={
            "test sampling": f"{_TDN_DS}: TSNDataSet._get_test_indices (window starts; all 0 when n <= T + 4)",
            "two clips": "none: TDN tests Sth-Sth with one clip; aknet takes TSM's twice_sample starts over TDN's "
                         "windows",
            "training sampling": f"{_TDN_DS}: TSNDataSet._sample_indices",
            "frames of a segment": f"{_TDN_DS}: TSNDataSet.get (5 frames from the start, advancing while inside)",
            "resize": f"{_TDN_TF}: GroupScale (torchvision Resize of PIL images, bilinear)",
            "centre crop": f"{_TDN_TF}: GroupCenterCrop (test_models_center_crop.py)",
            "three crops": f"{_TDN_TF}: GroupFullResSample (test_models_three_crops.py --test_crops 3 --full_res)",
            "averaging": "TDN pkl_to_results.py: softmax of each view's logits, summed, divided by clips x crops",
        },
        two_clips_note="2 clips are aknet's extension of TDN's protocol (TDN's code tests Sth-Sth with one clip): "
                       "the second takes TSM's twice-sample starts over TDN's windows"),
    "mmaction2": Protocol(
        "mmaction2", "mmaction2 1.x (test_pipeline of the TSM/TSN Sth-Sth configs)", "mmaction2", "bilinear",
        "round", "floor", "halves", "prob", windows=False,
        sources={
            "test sampling": f"{_MM_LOAD}: SampleFrames._get_test_clips (clip_len=1: segment centres)",
            "two clips": f"{_MM_LOAD}: SampleFrames._get_test_clips with twice_sample=True (centres, then starts)",
            "training sampling": f"{_MM_LOAD}: SampleFrames._get_train_clips",
            "resize": f"{_MM_PROC}: Resize(scale=(-1, 256)) (mmcv.imrescale: long side rounded, OpenCV bilinear "
                      f"without antialiasing; torch's bilinear interpolation here, within one grey level)",
            "centre crop": f"{_MM_PROC}: CenterCrop (offsets floored)",
            "three crops": f"{_MM_PROC}: ThreeCrop (crop_size=256)",
            "averaging": "mmaction2 mmaction/models/heads/base.py: BaseHead.average_clip (average_clips='prob')",
        }),
    "aknet": Protocol(
        "aknet", "aknet's own (uniform offsets, centred windows)", "aknet", "antialias", "floor", "round", "ends",
        "prob", max_clips=None,
        sources={
            "test sampling": "aknet_cli/data/sampling.py: uniform offsets (k + 1/2)/K of each segment",
            "training sampling": "aknet_cli/data/sampling.py: a uniform random offset in each segment",
            "frames of a segment": "aknet_cli/data/sampling.py: windows centred on the sampled frame, clamped",
            "resize": "aknet_cli/data/transforms.py: torchvision Resize of tensors, antialiased",
            "centre crop": "aknet_cli/data/transforms.py: torchvision CenterCrop",
            "three crops": "aknet_cli/data/transforms.py: start, middle and end of the long side",
            "averaging": "aknet_cli/engine/scoring.py: collect_scores (mean softmax)",
        }),
}


def get_protocol(name: str, *, option: str = "--protocol") -> Protocol:
    """The protocol called ``name``.

    Raises:
        ConfigError: an unknown name (one line listing the known ones).
    """
    if name not in PROTOCOLS:
        raise ConfigError(f"{option} {name!r}: unknown protocol; choose one of {', '.join(PROTOCOL_NAMES)}")
    return PROTOCOLS[name]


def check_views(protocol: Protocol, *, clips: int, frames_per_segment: int, model: str,
                switch: str = "--protocol") -> None:
    """Refuse views or models a protocol does not define, before any work.

    ``switch`` is how the message names the setting (``--protocol``, ``data.protocol =``).

    Raises:
        ConfigError: more clips than the code base tests, or 5-frame windows under a protocol
            whose code base has no TDN (mmaction2).
    """
    if protocol.max_clips is not None and clips > protocol.max_clips:
        raise ConfigError(f"--views {clips}x…: the {protocol.name} protocol tests 1 or 2 clips per video (TSM's "
                          f"twice sample); use {switch} aknet for {clips} evenly shifted clips")
    if frames_per_segment > 1 and not protocol.windows:
        raise ConfigError(f"{model} reads {frames_per_segment} frames per segment, which the {protocol.name} "
                          f"protocol does not define ({protocol.name} has no TDN); use {switch} tdn")


def family_protocol(family: str | None) -> str:
    """The protocol a backbone family trains and tests with by default: TDN's for TDN, TSM's
    for TSN/TSM (and for a plugin that names none)."""
    return family if family in PROTOCOLS else "tsm"
