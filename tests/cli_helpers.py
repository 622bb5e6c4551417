"""Assertions and fixtures' building blocks shared by the CLI tests."""

from __future__ import annotations


def assert_one_line_error(result, *fragments: str) -> None:
    """A user mistake: non-zero exit, exactly one output line with every fragment, no traceback."""
    assert result.exit_code != 0
    text = result.output.strip()
    assert "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    for fragment in fragments:
        assert fragment in text, text


def write_stage1_checkpoint(path, *, ddp_prefix: bool = False):
    """A random stage-1 TSM-R18 checkpoint (6 classes, 4 segments) at ``path``; its keys carry
    DDP's ``module.`` prefix with ``ddp_prefix``. Returns the backbone it holds."""
    import torch

    from aknet_cli import create_backbone
    from aknet_cli.checkpoints.format import save_checkpoint

    torch.manual_seed(0)
    net = create_backbone("tsm_resnet18", num_classes=6, num_segments=4)
    state = {("module." if ddp_prefix else "") + k: v for k, v in net.state_dict().items()}
    save_checkpoint(path, kind="backbone", config={"backbone": "tsm_resnet18", "num_classes": 6, "num_segments": 4},
                    state_dict=state)
    return net
