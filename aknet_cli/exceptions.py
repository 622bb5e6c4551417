"""Domain errors.

Every error a *user* can cause (bad path, corrupt file, unknown name, value out of range)
is an :class:`AKNetError`. The CLI catches these at the command boundary and prints one
line, without a traceback, then exits with status 1. Anything else is a bug and keeps its
traceback.

The subclasses also derive from the matching built-in exception so library users can catch
``ValueError`` / ``FileNotFoundError`` / ``KeyError`` as they would expect.
"""

from __future__ import annotations


class AKNetError(Exception):
    """Base class for errors caused by user input; the message is shown as-is."""


class ConfigError(AKNetError, ValueError):
    """A value (option, config key, hyper-parameter) is invalid."""


class UnknownBackboneError(AKNetError, KeyError):
    """A backbone name is not registered in the ``aknet.backbones`` entry points."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class PluginError(AKNetError, ImportError):
    """A registered third-party plugin cannot be imported (its package is broken or half installed)."""


class InputShapeError(AKNetError, ValueError):
    """A tensor handed to a model has the wrong rank, frame count or channel count."""


class DataError(AKNetError, ValueError):
    """A dataset file or folder is missing, malformed, or inconsistent."""


class CheckpointError(AKNetError, ValueError):
    """A checkpoint cannot be read or does not match the model it is loaded into."""


class VideoDecodeError(DataError):
    """A video or frame file could not be decoded."""


class OutputError(AKNetError, OSError):
    """An output file or folder cannot be written (a file in the way, no permission, disk full)."""

    def __str__(self) -> str:  # OSError would otherwise format (errno, strerror)
        return str(self.args[0]) if self.args else ""


class RankZeroDecided(AKNetError):
    """Under torchrun, what a rank other than 0 raises for an error that rank 0 decided and
    reported (the same message): the CLI prints it once, on rank 0, not once per process."""
