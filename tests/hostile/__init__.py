"""The hostile-input sweep of the ``aknet`` command line (docs/testing.md), marked ``hostile`` and
deselected unless asked for: ``pytest -m hostile tests/hostile``.

``case`` says what a case is and asserts on its run, ``runner`` runs one as a subprocess,
``inputs`` and ``media`` build the scratch inputs (session fixtures in ``conftest``),
``parametrize`` turns a case table into tests, ``test_*`` hold the tables per subcommand,
``summary`` prints the per-command counts at the end of a session.
"""
