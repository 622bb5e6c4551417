"""AK-Net options written as text, parsed into the typed values :class:`AKNetConfig` takes.

Text reaches the model's switches three ways: ``--set KEY=VALUE`` pairs, the dedicated options
some commands give a switch of its own (``--transform-rank``, ``--tau``, ``--position``), and a
training config's ``[model.aknet]`` table (TOML has no null, so ``transform_rank = "none"``).
One parser serves all three, so ``flops``, ``bench`` and ``convert-1d`` read the same words the
same way and refuse the same mistakes with the same line.

Why here and not beside the CLI: ``engine/config.py`` reads the rank words too, and the engine
may not import ``cli/``. Nor can it sit at the package's top beside ``exceptions``: that is the
foundation, below ``models/``, and the parser needs :class:`AKNetConfig`'s fields. The engine is
the lowest room both users can import that may import ``models/``, and it already turns
``--set`` text into typed config values (``engine/config.py``). The model keeps only what the
values mean (``AKNetConfig.validate``, :func:`~aknet_cli.models.aknet.resolve_transform`).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..exceptions import ConfigError
from ..models.aknet import AKNetConfig

#: Words that select the paper's full ``(C+3)²`` transform net (``transform_rank=None``) where a
#: rank is expected; ``None`` itself cannot be typed on a command line or in TOML.
FULL_RANK_WORDS = ("none", "full", "paper", "null")
#: How a boolean switch may be spelled in ``--set`` (``ranking=off``).
BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
#: Switches the commands take as ``--split`` and ``--alpha``, never through ``--set``.
SPLIT_AND_ALPHA = ("split", "alpha")


def parse_rank(text: str | int | None) -> int | str | None:
    """A transform-net rank from the command line or a config: ``"auto"`` (the default, see
    :func:`~aknet_cli.models.aknet.resolve_transform`), a positive integer, or one of
    :data:`FULL_RANK_WORDS` (``"none"``) for the paper's full ``(C+3)²`` matrix (``None``)."""
    if text is None or isinstance(text, int) and not isinstance(text, bool):
        return text
    raw = str(text).strip().lower()
    if raw in FULL_RANK_WORDS:
        return None
    if raw == "auto":
        return "auto"
    try:
        rank = int(raw)
    except ValueError:
        rank = 0
    if rank < 1:
        raise ConfigError(f"transform rank must be 'auto', a positive integer or 'none' (the paper's full matrix), "
                          f"got {text!r}")
    return rank


def _tau_value(raw: str) -> float | str:
    """``"auto"`` (any case) or a float; a float's range is ``AKNetConfig.validate``'s to check.
    Raises ``ValueError`` for anything else."""
    return "auto" if raw.strip().lower() == "auto" else float(raw)


def parse_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings (the CLI's ``--set``) into typed AK-Net options.

    Values are converted to the type of the :class:`AKNetConfig` field: booleans accept
    :data:`BOOL_WORDS`; ``transform_rank`` accepts ``none`` (the paper's full matrix, see
    :func:`parse_rank`); ``tau`` accepts ``auto`` or a number. A ``-`` in a key reads as ``_``.

    Raises:
        ConfigError: malformed pair, unknown key, or a value of the wrong type.
    """
    fields = {name: f.default for name, f in AKNetConfig.__dataclass_fields__.items()}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key, raw = key.strip().replace("-", "_"), raw.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        if key not in fields:
            raise ConfigError(f"unknown AK-Net option {key!r} in --set; known: {', '.join(sorted(fields))}")
        out[key] = _typed_value(key, raw, fields[key])
    return out


def _typed_value(key: str, raw: str, default: Any) -> Any:
    """``raw`` as the type of the field whose default is ``default``."""
    try:
        if key == "transform_rank":
            return parse_rank(raw)
        if key == "tau":
            return _tau_value(raw)
        if isinstance(default, bool):  # before the generic cast: bool("false") is True
            return BOOL_WORDS[raw.lower()]
        return type(default)(raw)
    except (ValueError, KeyError):
        kind = "number or 'auto'" if key == "tau" else type(default).__name__
        raise ConfigError(f"--set {key}={raw!r}: expected a {kind}") from None


def _dedicated_tau(text: str) -> float | str:
    try:
        return _tau_value(text)
    except ValueError:
        raise ConfigError(f"--tau {text!r}: expected 'auto' or a number > 0") from None


#: How each dedicated option's text becomes a value; a value's range is the model's to check.
_DEDICATED = {"tau": _dedicated_tau, "position": str, "transform_rank": parse_rank}


def command_options(set_pairs: list[str] | tuple[str, ...], *, dedicated: Mapping[str, str | None] | None = None,
                    split_and_alpha_in_set: bool = False) -> dict[str, Any]:
    """The AK-Net options a command was given: its ``--set`` pairs merged with its dedicated
    options (``dedicated``: switch name, one of ``tau``, ``position``, ``transform_rank`` → the
    option's text, ``None`` where it was not given).

    A switch may come one way only: a dedicated option repeated in ``--set`` is refused rather
    than one silently winning, since the user meant one of two values and we cannot tell which.
    ``split`` and ``alpha`` in ``--set`` are refused too (the commands' ``--split`` and
    ``--alpha`` say them), unless ``split_and_alpha_in_set``: ``flops`` leaves them to its
    counter's own check (:func:`aknet_cli.analysis.flops.validate`), as it always has.

    Raises:
        ConfigError: anything :func:`parse_options` refuses; a switch given both ways; a
            dedicated option's text that is not its type; ``split`` or ``alpha`` in ``--set``.
    """
    options = parse_options(set_pairs)
    for key, text in (dedicated or {}).items():
        if text is None:
            continue
        if key in options:
            raise ConfigError(f"{key} is given both as --{key.replace('_', '-')} and in --set; give it once")
        options[key] = _DEDICATED[key](text)
    if not split_and_alpha_in_set and set(SPLIT_AND_ALPHA) & set(options):
        raise ConfigError("use --split and --alpha, not --set, for the split and the sampling rate")
    return options
