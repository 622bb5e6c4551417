"""Built-in backbone plugins, registered through the ``aknet.backbones`` entry points."""
