"""What turns one set of weights into another model or file.

* :mod:`.stage2`: a stage-1 backbone checkpoint into a stage-2 AK-Net checkpoint (``aknet
  convert-1d``: the 1-D conversion ``M`` of eq. 11 applied to whole weights, the stage-1
  classifier carried into the point-feature columns);
* :mod:`.calibrate`: the converted 1-D subnet's BatchNorm statistics re-estimated on real clips;
* :mod:`.export`: a trained model to TorchScript / ONNX for deployment (``aknet export``).

The layer rule: ``engine`` (training) may use these; they use ``checkpoints``, ``models`` and
``data``, never the engine.
"""
