"""analysis.run_comparison (studies/transform_coordinate_scale.py compare): each row of runs
paired with the reference row on the same clips, seeds averaged per clip."""

from __future__ import annotations

from pathlib import Path

from aknet_cli.analysis import run_comparison


def _run_dir(root: Path, name: str, correct: list[int]) -> None:
    folder = root / name / "eval_test"
    folder.mkdir(parents=True)
    rows = [f"{i},{1},{1 if ok else 0}" for i, ok in enumerate(correct)]
    (folder / "predictions.csv").write_text("id,label,top1\n" + "\n".join(reversed(rows)) + "\n")  # one order for every run, as evaluate writes the split


def test_compare_pairs_each_row_with_the_reference_on_the_same_clips(tmp_path):
    # 10 clips; the reference's two seeds get 5 and 6 right, the other row's 8 and 8 (a superset)
    _run_dir(tmp_path, "ref_s0", [1] * 5 + [0] * 5)
    _run_dir(tmp_path, "ref_s1", [1] * 6 + [0] * 4)
    _run_dir(tmp_path, "new_s0", [1] * 8 + [0] * 2)
    _run_dir(tmp_path, "new_s1", [1] * 8 + [0] * 2)
    table = run_comparison.compare([f"ref={tmp_path}/ref_s?", f"new={tmp_path}/new_s?"], reference="ref")
    ref_line, new_line = table.splitlines()[2:]
    assert ref_line.startswith("| ref | 50.00, 60.00 | 55.00 ± 7.07 | — |")
    # seeds averaged per clip: 0.8 − 0.55 = +25 points; per seed +30 and +20
    assert new_line.startswith("| new | 80.00, 80.00 | 80.00 ± 0.00 | +25.00 [")
    assert new_line.endswith("| +30.00, +20.00 |")
