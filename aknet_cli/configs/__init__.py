"""Training configs shipped with aknet (TOML, one per paper setting and one per demo step).

They are package data, so an installed wheel can name them without a path
(``aknet train tsm_r50_sthv1_stage1``); ``aknet train --list-configs`` lists them. The
repository's top-level ``configs/`` is a link to this folder.
"""
