"""Checkpoints: the file format aknet writes, the one reader every command and the trainer use,
and the layouts of other codebases' published weights.

* :mod:`.format`: the container (``save_checkpoint``, ``read_checkpoint_file``: digests verified,
  written atomically) and strict state-dict loading;
* :mod:`.schema`: what a model description in a checkpoint must hold, checked before use;
* :mod:`.reader`: ``read_checkpoint`` turns any supported file (aknet's, TSM's, TDN's,
  mmaction2's) into one :class:`~aknet_cli.checkpoints.reader.Checkpoint`, and
  ``model_from_checkpoint`` builds the model it describes;
* :mod:`.foreign`: the detection of other codebases' layouts, which the backbone plugins
  register (the built-ins: TSM's and mmaction2's in ``aknet_backbones.tsm_layouts``, TDN's in
  ``aknet_backbones.tdn_layouts``), and the helpers a layout's code shares.

Nothing here trains or evaluates: the engine, the conversions and the commands read and write
weights through this package.
"""
