"""Assertions shared by the CLI tests."""

from __future__ import annotations


def assert_one_line_error(result, *fragments: str) -> None:
    """A user mistake: non-zero exit, exactly one output line with every fragment, no traceback."""
    assert result.exit_code != 0
    text = result.output.strip()
    assert "Traceback" not in text
    assert len(text.splitlines()) == 1, text
    for fragment in fragments:
        assert fragment in text, text
