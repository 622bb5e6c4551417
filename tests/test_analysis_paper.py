"""The paper's reference numbers, checked against the differences its own text states."""

from __future__ import annotations

import pytest

from aknet_cli.analysis import paper
from aknet_cli.models.aknet import AKNetConfig


def test_table_ii_gains_stated_in_the_text():
    row = paper.table_ii_row
    # §IV-B: "1.1% and 0.3% for TSM and TDN on Something-Something V2".
    assert row("Ours_TSM").sthv2 - row("TSM").sthv2 == pytest.approx(1.1)
    assert row("Ours_TDN").sthv2 - row("TDN").sthv2 == pytest.approx(0.3)
    # "outperforms the typical I3D ... by 10.9% on Something-Something V1 with 9.8x computation reduction"
    assert row("Ours_TDN").sthv1 - row("I3D").sthv1 == pytest.approx(10.9)
    assert row("I3D").gflops * row("I3D").views / row("Ours_TDN").gflops == pytest.approx(9.8, abs=0.1)
    # "S3D ... 4.3% accuracy improvement"
    assert row("Ours_TDN").sthv1 - row("S3D-G").sthv1 == pytest.approx(4.3)
    assert paper.table_ii_counted() == {
        "TSM": ("tsm_resnet50", "none", 33.0), "TDN": ("tdn_resnet50", "none", 36.0),
        "Ours_TSM": ("tsm_resnet50", "res4", 28.0), "Ours_TDN": ("tdn_resnet50", "res4", 31.0),
    }


def test_table_iii_gains_stated_in_the_text():
    # "AK-Net with TSM and TDN surpass the original methods by 2.4% and 1.2%"
    assert paper.TABLE_III["Ours_TSM"][2] - paper.TABLE_III["TSM"][2] == pytest.approx(2.4)
    assert paper.TABLE_III["Ours_TDN"][2] - paper.TABLE_III["TDN"][2] == pytest.approx(1.2)


def test_ablation_tables_match_the_text():
    iv = {r.name: r.paper_top1 for r in paper.TABLE_IV}
    assert iv["Q+R"] - iv["Q only"] == pytest.approx(12.7)  # "a significant margin (12.7%)"
    assert iv["Q+R+r_e"] - iv["Q+R"] == pytest.approx(0.2)  # "only improves ... slightly (0.2%)"
    assert iv["all"] - iv["Q only"] == pytest.approx(14.2)  # "totally 14.2% improvement"
    v = {r.name: r.paper_top1 for r in paper.TABLE_V}
    assert v["+ learnable embedding"] - v["baseline"] == pytest.approx(0.8)
    assert v["+ feature transform"] - v["baseline"] == pytest.approx(1.6)
    ours = {a: t[1] for a, t in paper.TABLE_VI.items()}
    assert max(ours.values()) == 48.58 and ours[1.0] == 44.3  # "maximum 48.58%, then ... 44.3%"
    assert ours[0.1] > paper.TABLE_VI[1.0][0]  # "with only 10% points, it even surpasses the baseline that uses all"


@pytest.mark.parametrize("table", sorted(paper.ABLATION_TABLES))
def test_ablation_switches_are_valid_model_options(table):
    rows = paper.ABLATION_TABLES[table]
    assert len({r.name for r in rows}) == len(rows)
    for r in rows:
        AKNetConfig(**r.switches).validate()
    assert len(rows) == {"iv": 6, "v": 3, "vi": 10}[table]
