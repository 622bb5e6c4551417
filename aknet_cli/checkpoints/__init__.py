"""Checkpoints: the file format aknet writes, the one reader every command and the trainer use,
and the layouts of other codebases' published weights.

* :mod:`.format`: the container (``save_checkpoint``, ``read_checkpoint_file``: digests verified,
  written atomically) and strict state-dict loading;
* :mod:`.schema`: what a model description in a checkpoint must hold, checked before use;
* :mod:`.reader`: ``read_checkpoint`` turns any supported file (aknet's, TSM's, TDN's,
  mmaction2's) into one :class:`~aknet_cli.checkpoints.reader.Checkpoint`, and
  ``model_from_checkpoint`` builds the model it describes;
* :mod:`.foreign`: the built-in foreign layouts (TSM, TDN, mmaction2) and their detection.

Nothing here trains or evaluates: the engine, the conversions and the commands read and write
weights through this package.
"""
