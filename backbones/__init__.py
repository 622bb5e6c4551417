"""Built-in backbone plugins, registered through the ``aknet.backbones`` entry points.

The folder is ``backbones/`` in the repository, but it installs as the import package
``aknet_backbones`` (a ``package-dir`` mapping in ``pyproject.toml``): a distribution named
``backbones`` already exists on the package index, and two distributions that ship the same
import name silently overwrite each other.
"""
