"""Readers: each returns a :class:`Release` and opens no media."""

from ._release import Entry, Release
from ._text import read_label_names
from .diving48 import read_diving48
from .folder import read_folder
from .lists import read_lists
from .sthv1 import read_sthv1
from .sthv2 import read_sthv2

#: The official releases, by ``aknet prepare`` sub-command (users' own data: read_folder, read_lists).
READERS = {"sthv1": read_sthv1, "sthv2": read_sthv2, "diving48": read_diving48}

__all__ = ["Entry", "Release", "READERS", "read_diving48", "read_folder", "read_label_names", "read_lists",
           "read_sthv1", "read_sthv2"]
