"""The hostile-input sweep behind ``scripts/hostile_cli.py`` (a QA tool, not a test suite).

``case`` says what a case is and how a run is judged, ``runner`` runs one as a subprocess,
``fixtures`` and ``media`` build the scratch inputs, ``cases_*`` list the cases per subcommand,
``report`` prints and saves the results.
"""
