"""Training configs: TOML files validated against a typed schema before any work starts.

A config has five tables, each a dataclass below (every key, its type and default is
documented in ``docs/training.md``)::

    [model]  backbone, stage (1 = the 2-D backbone, 2 = AK-Net), pretrained, init_from, ...
    [model.aknet]  the AK-Net switches of :class:`~aknet_cli.models.aknet.AKNetConfig`
    [data]   the prepared dataset and its sampling/augmentation/loader settings
    [optim]  optimizer, learning-rate schedule, batch size, clipping, lr multipliers
    [train]  seed, device, AMP, evaluation cadence
    [ckpt]   checkpoint cadence

A file may also hold named sets of values, ``[recipes.NAME.SECTION]`` tables, and
``recipe = "NAME"`` (or ``--set recipe=NAME``) applies one over the file's own values; ``--set``
values win over both. The shipped stage-1 configs follow their backbone's official code where
the paper is silent or loose and keep the paper's literal sentence as ``recipe = "paper"``.

Configs are named by path or, for the ones shipped in :mod:`aknet_cli.configs`, by name
(``tsm_r50_sthv1_stage1``). ``--set optim.lr=0.02`` overrides one dotted key; the value is
read as a TOML value (``--set data.flip=true``, ``--set optim.milestones=[10,20]``) and a bare
word is a string. Relative paths in a config (``data.dataset``, ``model.init_from``,
``model.pretrained``) are relative to the current directory.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .._validate import check_fields, check_number, ranged
from ..data.video_io import BACKENDS, default_backend
from ..exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there, see pyproject.toml)
    import tomli as tomllib

CONFIG_PACKAGE = "aknet_cli.configs"


@dataclass
class ModelConfig:
    """What to train. ``stage = 1``: the backbone alone; ``stage = 2``: AK-Net built from
    the stage-1 checkpoint ``init_from`` by the same conversion as ``aknet convert-1d``."""

    backbone: str = "tsm_resnet50"
    stage: int = ranged(1, ge=1, le=2, why="1 trains the backbone, 2 AK-Net")
    pretrained: str = ""
    init_from: str = ""
    init_label_order: str = ""
    num_segments: int = ranged(8, ge=1)
    dropout: float = ranged(0.5, ge=0.0, lt=1.0, why="the probability of zeroing a feature")
    partial_bn: bool = False
    norm_eval: bool = False
    sync_bn: bool = False
    calibrate_batches: int = ranged(0, ge=0)
    aknet: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    """The prepared dataset (``aknet prepare``) and how clips are read from it."""

    dataset: str = ""
    train_split: str = "train"
    val_split: str = "val"
    resize: int = ranged(256, ge=1)
    crop: int = ranged(224, ge=1)
    resize_mode: str = "short"
    #: The training crop: ``random`` (the paper's "random crop 224") or ``multiscale`` (TSN's
    #: multi-scale crop with aspect jitter and 13 fixed positions, as TSM's and TDN's code train).
    crop_mode: str = "random"
    #: Frame sampling, resize and crops (aknet_cli.data.protocols): ``auto`` follows the backbone's
    #: family (TDN's windows for TDN, TSM's segments otherwise); ``aknet`` is the uniform sampler.
    protocol: str = "auto"
    flip: bool = False
    #: What a flipped clip's label becomes: ``swap`` (its mirror class from the dataset's flip
    #: map, which must exist: TDN's Sth-Sth flip) or ``keep`` (a dataset no mirror changes the
    #: class of, e.g. Diving48's dives: TSM's and TDN's plain flip; refused where a flip map exists).
    flip_labels: str = "swap"
    backend: str = field(default_factory=default_backend)  # the fastest exact decoder installed
    num_workers: int = ranged(4, ge=0)
    pin_memory: bool = True
    persistent_workers: bool = True
    on_error: str = "fail"
    val_batch_size: int = ranged(0, ge=0, why="0 means optim.batch_size")


@dataclass
class OptimConfig:
    """The paper's schedule by default (SGD, lr 0.01, ×0.1 at 20 and 40) at TSM's and TDN's global
    batch of 64 (the paper states none), with TSM's ×5/×10 lr on fresh classifier heads."""

    name: str = "sgd"
    lr: float = ranged(0.01, gt=0.0)
    base_batch_size: int = ranged(64, ge=1)
    batch_size: int = ranged(64, ge=1)
    momentum: float = ranged(0.9, ge=0.0, lt=1.0)
    weight_decay: float = ranged(5e-4, ge=0.0, why="a negative decay pushes the weights away from zero")
    no_decay_bn_bias: bool = True
    epochs: int = ranged(50, ge=1)
    milestones: list[int] = field(default_factory=lambda: [20, 40])
    gamma: float = ranged(0.1, gt=0.0, le=1.0, why="the factor the lr is multiplied by at each milestone")
    warmup_epochs: float = ranged(0.0, ge=0.0)
    clip_grad_norm: float = ranged(20.0, ge=0.0, why="0 turns clipping off")
    fc_lr_mult: float = ranged(5.0, gt=0.0)
    fc_bias_lr_mult: float = ranged(10.0, gt=0.0)
    #: Stage 2: lr multiplier of the fresh position module (transform net or embedding). Under
    #: AdamW every zero-initialised weight of the transform net takes lr-sized steps from the
    #: first one, and the transform's output ran away (docs/ablation.md): 0.1 in the demo.
    position_lr_mult: float = ranged(1.0, gt=0.0)


@dataclass
class TrainConfig:
    """Run settings."""

    seed: int = ranged(0, ge=0, lt=2**32, why="NumPy's generator takes 32-bit seeds")
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    eval_every: int = ranged(1, ge=1)
    log_every: int = ranged(10, ge=1)


@dataclass
class CkptConfig:
    """Checkpoint cadence: ``last.pt`` every epoch, and every ``every_steps`` steps if > 0."""

    every_steps: int = ranged(0, ge=0, why="0 writes last.pt at epoch ends only")


@dataclass
class RunConfig:
    """A whole training config."""

    name: str = "run"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ckpt: CkptConfig = field(default_factory=CkptConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def scaled_lr(self) -> float:
        """``lr`` scaled linearly with the global batch (``lr · batch / base_batch_size``)."""
        return self.optim.lr * self.optim.batch_size / self.optim.base_batch_size


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "train": TrainConfig, "ckpt": CkptConfig}
_CHOICES = {
    "optim.name": ("sgd", "adam", "adamw"),
    "data.resize_mode": ("short", "square"),
    "data.crop_mode": ("random", "multiscale"),
    "data.flip_labels": ("swap", "keep"),
    "data.protocol": ("auto", "tsm", "tdn", "mmaction2", "aknet"),
    "model.init_label_order": ("", "file", "sorted"),
    "data.backend": BACKENDS,
    "data.on_error": ("fail", "skip"),
    "train.device": ("auto", "cpu", "cuda"),
}


# ----------------------------------------------------------------------------- finding
def packaged_configs() -> dict[str, Path]:
    """Configs shipped inside the package: ``{name: path}``."""
    folder = resources.files(CONFIG_PACKAGE)
    return {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path to an existing file, or the name of a packaged config (with or without .toml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = packaged_configs()
    key = path.name[:-5] if path.name.endswith(".toml") else path.name
    if path.parent == Path(".") and key in shipped:
        return shipped[key]
    if path.exists():
        raise ConfigError(f"config {path} is not a file")
    raise ConfigError(
        f"config {name_or_path} not found: neither a file nor a shipped config name "
        f"(see `aknet train --list-configs`)"
    )


# ----------------------------------------------------------------------------- loading
def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = (), *,
                check_paths: bool = True) -> RunConfig:
    """Read, override and validate a config.

    ``check_paths=False`` skips the checks of files the config names (the dataset), e.g.
    to print a shipped config before its data is prepared.

    Raises:
        ConfigError: unreadable TOML, an unknown key, a wrong type, a bad choice, a missing
            dataset: one line naming the key and the file.
    """
    path = resolve_config_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # Notepad starts UTF-8 with a BOM
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file; a config is TOML") from None
    raw.setdefault("name", path.stem)
    for item in overrides:
        apply_override(raw, item)
    apply_recipe(raw, explicit={item.partition("=")[0].strip() for item in overrides}, source=str(path))
    cfg = build_config(raw, source=str(path))
    if check_paths:
        check_paths_exist(cfg, source=str(path))
    return cfg


def parse_value(raw: str) -> Any:
    """A ``--set`` value as TOML (numbers, booleans, arrays, quoted strings), else a string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``key.sub=value`` override to a raw (unvalidated) config dict."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE with a dotted key (e.g. optim.lr=0.02), got {item!r}")
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a table")
        node = child
    node[parts[-1]] = parse_value(value.strip())


def apply_recipe(raw: dict[str, Any], *, explicit: set[str] = frozenset(), source: str = "config") -> None:
    """Take ``recipe`` and ``recipes`` out of a raw config and apply the named recipe in place.

    ``recipes`` is ``{name: {section: {key: value}}}``; the values of ``recipes[recipe]``
    replace the file's, except for the dotted keys in ``explicit`` (the ``--set`` ones).
    ``recipe`` absent or ``""`` applies nothing.

    Raises:
        ConfigError: a recipe the file does not define, or a malformed ``recipes`` table.
    """
    name = raw.pop("recipe", "")
    recipes = raw.pop("recipes", {})
    if not isinstance(name, str):
        raise ConfigError(f"{source}: 'recipe' must be str, got {name!r} ({type(name).__name__})")
    if not isinstance(recipes, dict) or not all(isinstance(r, dict) for r in recipes.values()):
        raise ConfigError(f"{source}: 'recipes' must hold tables ([recipes.NAME.SECTION])")
    if not name:
        return
    if name not in recipes:
        known = ", ".join(sorted(recipes)) or "none"
        raise ConfigError(f"{source}: 'recipe' = {name!r} is not defined in this file (its recipes: {known})")
    for section, table in recipes[name].items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: 'recipes.{name}.{section}' must be a table of keys")
        for key, value in table.items():
            if f"{section}.{key}" not in explicit:
                target = raw.setdefault(section, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"{source}: {section!r} must be a table ([{section}])")
                target[key] = value


def build_config(raw: dict[str, Any], *, source: str) -> RunConfig:
    """Validate a raw dict against the schema; see :func:`load_config`."""
    raw = dict(raw)
    top = {"name", "description", *_SECTIONS}
    unknown = sorted(set(raw) - top)
    if unknown:
        known = ", ".join(sorted(top | {"recipe", "recipes"}))  # those two are taken out by load_config
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; known top-level keys: {known}")
    sections = {}
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {name!r} must be a table ([{name}])")
        sections[name] = _build_section(cls, table, name, source)
    cfg = RunConfig(name=_check_type(raw.get("name", "run"), str, "name", source),
                    description=_check_type(raw.get("description", ""), str, "description", source), **sections)
    _check_values(cfg, source)
    return cfg


def _build_section(cls: type, table: dict[str, Any], prefix: str, source: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}.{unknown[0]}'; known in [{prefix}]: {', '.join(sorted(known))}")
    values = {k: _check_type(v, hints[k], f"{prefix}.{k}", source) for k, v in table.items()}
    return cls(**values)


def _check_type(value: Any, hint: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list of {item.__name__}, got {value!r}")
        return [_check_type(v, item, key, source) for v in value]
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a table, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ConfigError(f"{source}: '{key}' must be {hint.__name__}, got {value!r} ({type(value).__name__})")
    return value


def check_config(cfg: RunConfig, *, source: str = "config") -> RunConfig:
    """Every check :func:`load_config` applies to a file, for a :class:`RunConfig` built in
    Python (``train()`` calls it, so the API cannot skip what the CLI refuses)."""
    _check_values(cfg, source)
    return cfg


def _check_values(cfg: RunConfig, source: str) -> None:
    """Ranges (declared on the fields), choices, and the rules that tie keys together."""
    try:
        for name in _SECTIONS:
            check_fields(getattr(cfg, name), prefix=f"{name}.")
        for milestone in cfg.optim.milestones:
            check_number(milestone, "'optim.milestones'", integer=True, bounds={"ge": 0})
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in choices:
            raise ConfigError(f"{source}: '{key}' must be one of {', '.join(choices)}, got {value!r}")
    if cfg.model.stage not in (1, 2):
        raise ConfigError(f"{source}: 'model.stage' must be 1 (backbone) or 2 (AK-Net), got {cfg.model.stage}")
    if cfg.model.stage == 2 and not cfg.model.init_from:
        raise ConfigError(f"{source}: stage 2 needs 'model.init_from', the stage-1 checkpoint to convert")
    if cfg.model.stage == 1 and cfg.model.aknet:
        raise ConfigError(f"{source}: [model.aknet] switches need 'model.stage = 2'")
    if cfg.model.aknet:
        _check_aknet_switches(cfg.model.aknet, source)
    if cfg.data.crop > cfg.data.resize:
        raise ConfigError(f"{source}: 'data.crop' ({cfg.data.crop}) must not exceed 'data.resize' ({cfg.data.resize})")
    if any(b <= a for a, b in zip(cfg.optim.milestones, cfg.optim.milestones[1:])):
        raise ConfigError(f"{source}: 'optim.milestones' must increase, got {cfg.optim.milestones}")


def _check_aknet_switches(switches: dict[str, Any], source: str) -> None:
    """``[model.aknet]`` holds :class:`~aknet_cli.models.aknet.AKNetConfig` keys, checked by its
    own ``validate``; TOML has no null, so ``transform_rank = "none"`` asks for the paper's
    full (C+3)² transform net and is stored as ``None``."""
    from ..models.aknet import AKNetConfig
    from .aknet_options import parse_rank

    known = set(AKNetConfig.__dataclass_fields__)
    unknown = sorted(set(switches) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key 'model.aknet.{unknown[0]}'; known: {', '.join(sorted(known))}")
    try:
        if isinstance(switches.get("transform_rank"), str):
            switches["transform_rank"] = parse_rank(switches["transform_rank"])
        AKNetConfig(**switches).validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: 'model.aknet': {exc}") from None


def check_paths_exist(cfg: RunConfig, *, source: str) -> None:
    """The dataset (and a stage-2 run's stage-1 checkpoint) must exist before any work starts."""
    if not cfg.data.dataset:
        raise ConfigError(f"{source}: 'data.dataset' is empty; set it to a folder made by `aknet prepare` "
                          f"(e.g. --set data.dataset=data/sthv1)")
    if not (Path(cfg.data.dataset) / "dataset.json").is_file():
        raise ConfigError(f"{source}: 'data.dataset' = {cfg.data.dataset} is not a prepared dataset "
                          f"(no dataset.json); run `aknet prepare` first or pass --set data.dataset=DIR")
    if cfg.model.stage == 2 and not Path(cfg.model.init_from).is_file():
        raise ConfigError(f"{source}: 'model.init_from' = {cfg.model.init_from} does not exist; train stage 1 first "
                          f"or pass --set model.init_from=STAGE1.pt")


def to_toml(cfg: RunConfig) -> str:
    """The resolved config as TOML (what ``--print-config`` shows and ``config.toml`` holds)."""
    data = cfg.to_dict()
    lines = [f"name = {_toml_value(data.pop('name'))}", f"description = {_toml_value(data.pop('description'))}"]
    for section, table in data.items():
        nested = {k: v for k, v in table.items() if isinstance(v, dict) and v}
        lines.append(f"\n[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for name, sub in nested.items():
            lines.append(f"\n[{section}.{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in sub.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
