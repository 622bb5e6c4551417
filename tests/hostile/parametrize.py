"""A case table as pytest parameters: one test per case, its id the case's name.

A table is a function of the inputs (``table(fx) -> list[Case]``): the cases' arguments hold
the inputs' paths, and where the inputs live is known only once the session's fixtures run. So
pytest collects the names from the table laid out at a placeholder folder, and the ``case``
fixture (conftest.py) builds the table again against the real inputs and takes the named case.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import pytest

from .case import Case
from .inputs import Inputs

Table = Callable[[Inputs], list[Case]]

#: Only the names are read from it: no file is built or read there.
_LAYOUT_FOR_NAMES = Inputs(Path("/aknet-hostile-inputs-not-built"), aknet="aknet")


def each_case(table: Table) -> pytest.MarkDecorator:
    """Parametrize a test's ``case`` fixture over the cases of ``table``."""
    names = [case.name for case in table(_LAYOUT_FOR_NAMES)]
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:  # the name is how a case is found again when it runs
        raise ValueError(f"{table.__name__}: case names must be unique, repeated: {repeated}")
    return pytest.mark.parametrize("case", [pytest.param((table, name), id=name) for name in names], indirect=True)


def case_named(table: Table, name: str, fx: Inputs) -> Case:
    return next(case for case in table(fx) if case.name == name)
