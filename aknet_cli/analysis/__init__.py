"""Analysis: FLOP counting (``flops``), latency (``bench``), keypoint overlays (``overlay``),
plots (``plots``) and the paper's reference numbers (``paper``).

Submodules import torch; import them where needed (``from aknet_cli.analysis import flops``).
"""
