"""artlib.paper_numbers: the YAML of the papers' reported numbers, its readers, and spot checks against the texts."""
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from artlib import paper_numbers as pn

PAPERS_DIR = Path(__file__).resolve().parents[2] / "shared" / "papers"


def test_yaml_parses_and_validates():
    with open(pn.PATH, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    pn.validate(raw)
    assert set(raw) == {"art", "inequality"}
    assert pn.load() == raw


def test_every_table_has_declared_columns_only():
    data = pn.load()
    n_rows = 0
    for paper, tabs in data.items():
        for tid, spec in tabs.items():
            assert spec["caption"] and spec["source"], (paper, tid)
            if not spec["rows"]:
                assert spec.get("missing"), f"{paper}.{tid}: empty without a reason"
                continue
            for row in spec["rows"]:
                metrics = set(row) - set(pn.ID_KEYS) - set(pn.META_KEYS)
                assert metrics == set(spec["columns"]), (paper, tid, row)
                assert any(row.get(k) is not None for k in pn.ID_KEYS), (paper, tid, row)
                if row.get("uncertain"):
                    assert row.get("note"), f"{paper}.{tid}: uncertain row without a note: {row}"
                n_rows += 1
            df = pn.table(paper, tid)
            assert len(df) == len(spec["rows"])
            assert [c for c in df.columns if c not in pn.ID_KEYS and c not in pn.META_KEYS] == spec["columns"]
    assert n_rows >= 145   # 101 ART + 44 Inequality rows transcribed


def test_units_in_column_names_match_values():
    long = pn.to_long()
    pct = long[long.metric.str.contains(r"\(%\)", regex=True)]
    frac = long[long.metric.str.contains(r"\(fraction\)", regex=True)]
    assert len(pct) > 200 and len(frac) > 20
    assert pct.value.between(0, 100).all()
    assert frac.value.between(0, 1).all()
    # every metric states its unit, except the Gini standard deviations (same unit as their Gini column)
    unitless = set(long.metric) - set(pct.metric) - set(frac.metric)
    assert unitless == {"Gini global std", "Gini regional std"}


def test_validate_rejects_bad_structures():
    good = pn.load()
    bad = pn.load()
    bad["art"]["table1"]["rows"][0]["bogus (%)"] = 1.0
    with pytest.raises(ValueError, match="bogus"):
        pn.validate(bad)
    bad = pn.load()
    del bad["art"]["table1"]["rows"][0]["K (%)"]
    with pytest.raises(ValueError, match="K \\(%\\)"):
        pn.validate(bad)
    bad = pn.load()
    bad["art"]["table1"]["rows"][1]["eps"] = 8
    with pytest.raises(ValueError, match="eps"):
        pn.validate(bad)
    bad = pn.load()
    bad["art"]["fig8"].pop("missing")
    with pytest.raises(ValueError, match="missing"):
        pn.validate(bad)
    bad = pn.load()
    bad["art"]["fig7"]["rows"].append(dict(bad["art"]["fig7"]["rows"][0]))
    with pytest.raises(ValueError, match="duplicate"):
        pn.validate(bad)
    with pytest.raises(ValueError, match="top-level"):
        pn.validate({"art": good["art"]})
    pn.validate(good)


def test_load_returns_a_copy():
    pn.load()["art"]["table1"]["rows"][0]["IN (%)"] = -1
    assert pn.load()["art"]["table1"]["rows"][0]["IN (%)"] == 40.25


# ---------------------------------------------------------------------------------- spot checks, read from the txt
def test_art_fig7_top1_seg():
    seg = "Top-1 Seg (fraction)"
    got = {(a, m): pn.paper_value("art", "fig7", seg, attribution=a, method=m)
           for a in ("ig", "saliency") for m in ("Natural", "PGD-7", "ART")}
    assert got == {("ig", "Natural"): 0.337, ("ig", "PGD-7"): 0.422, ("ig", "ART"): 0.604,
                   ("saliency", "Natural"): 0.244, ("saliency", "PGD-7"): 0.246, ("saliency", "ART"): 0.317}


def test_art_table1_cells():
    assert pn.paper_value("art", "table1", "IN (%)", dataset="cifar10", method="ART") == 92.90
    assert pn.paper_value("art", "table1", "K (%)", dataset="svhn", method="PGD-7") == 55.56
    assert pn.paper_value("art", "table1", "PGD-40 acc (%)", dataset="flowers17", method="IG-SUM-NORM") == 47.06
    assert pn.paper_value("art", "table1", "PGD-40 acc (%)", dataset="cifar10", method="Natural") == 0.0
    df = pn.table("art", "table1")
    assert df.groupby("dataset").size().to_dict() == {"cifar10": 3, "svhn": 3, "gtsrb": 5, "flowers17": 5}


def test_art_other_tables_cells():
    assert pn.paper_value("art", "table2", "Grad GT-known Loc (%)", model="resnet50", method="ART") == 82.65
    assert pn.lookup("art", "table2", method="ADL*")["Grad GT-known Loc (%)"] is None
    assert pn.paper_value("art", "table3", "Top-1 acc (%)", method="ART", corruption="contrast") == 56.69
    t3 = pn.table("art", "table3")
    assert t3.groupby("method").size().to_dict() == {"ART": 15, "Natural": 15, "PGD-10": 15}
    assert pn.paper_value("art", "table4", "K (%)", method="PGD-10", attribution="gradshap") == 59.80
    assert pn.paper_value("art", "table5", "Adv acc (%)", variant="argmin") == 37.93
    assert pn.paper_value("art", "table6", "Adv acc, perturbation from ART (%)", method="Natural") == 49.09
    # Table 6's diagonal is the white-box accuracy of Table 1, its last column Table 1's natural accuracy
    for m in ("Natural", "PGD-10", "ART"):
        row = pn.lookup("art", "table6", method=m)
        t1 = pn.lookup("art", "table1", dataset="cifar10", method=m)
        assert row[f"Adv acc, perturbation from {m} (%)"] == t1["PGD-40 acc (%)"]
        assert row["Clean acc (%)"] == t1["Nat acc (%)"]
    assert pn.paper_value("art", "sec5_targeted", "K (%)", method="ART") == 64.76
    assert pn.paper_value("art", "sec5_attacks", "Adv acc (%)", method="PGD-10", attack="spatial") == 6.76


def test_inequality_cells():
    g = "Gini global (fraction)"
    assert pn.paper_value("inequality", "table1", g, dataset="cifar10", model="resnet18", eps="0") == 0.58
    assert pn.paper_value("inequality", "table1", g, dataset="cifar10", model="densenet", eps="8/255") == 0.72
    assert pn.paper_value("inequality", "table1", g, dataset="imagenet", model="resnet50", eps="8/255") == 0.94
    assert pn.paper_value("inequality", "table1", "Gini regional (fraction)", model="resnet18", eps="0") == 0.79
    assert pn.paper_value("inequality", "table1", "Gini regional (fraction)", model="resnet18", eps="8/255") is None
    # Gini rises with eps on CIFAR-10 (Sec. 4.2)
    t1 = pn.table("inequality", "table1")
    r18 = t1[(t1.dataset == "cifar10") & (t1.model == "resnet18")]
    assert r18[g].is_monotonic_increasing and len(r18) == 5
    assert pn.paper_value("inequality", "a9_occlusion_cifar10", "Error rate (%)", method="l-inf AT",
                          attack="occlusion grey") == 38.1
    assert pn.paper_value("inequality", "fig3", "Error rate (%)", method="standard", attack="noise type I") == 34.5
    assert pn.lookup("inequality", "fig3", attack="noise type II", pixels=1000)["qualifier"] == ">"
    assert pn.paper_value("inequality", "table6", g, class_name="Web site") == 0.890


def test_inequality_gini_examples_follow_the_paper_formula():
    """A.3's worked examples: Gini = (n + 1 - 2 sum_i (n + 1 - i) phi_i / sum phi) / n, ascending phi."""
    def gini(v):
        v = np.sort(np.asarray(v, dtype=float))
        n = len(v)
        return (n + 1 - 2 * np.sum((n + 1 - np.arange(1, n + 1)) * v) / v.sum()) / n

    for inp in ("[0, 0, 0, 1, 1]", "[0, 0, 0, 1, 1000]"):
        printed = pn.paper_value("inequality", "a3_gini_examples", "Gini (fraction)", input=inp)
        exact = gini(yaml.safe_load(inp))
        assert math.floor(exact * 1000) / 1000 == printed   # printed truncated to 3 decimals (0.7996 -> 0.799)


def test_numbers_appear_in_the_paper_texts():
    """Every value of a row not flagged uncertain is printed in the project's txt (as written in the YAML)."""
    texts = {p: (PAPERS_DIR / f"{name}.txt") for p, name in (("art", "art_eccv2020"),
                                                                ("inequality", "inequality_iclr2023"))}
    if not all(t.exists() for t in texts.values()):
        if os.environ.get("ARTLIB_REQUIRE_DATA") == "1":
            pytest.fail(f"paper texts not found under {PAPERS_DIR} (ARTLIB_REQUIRE_DATA=1)")
        pytest.skip(f"paper texts not found under {PAPERS_DIR}")
    raw = yaml.safe_load(pn.PATH.read_text(encoding="utf-8"))
    corpus = {p: t.read_text(encoding="utf-8") for p, t in texts.items()}
    checked = 0
    for paper, tabs in raw.items():
        for tid, spec in tabs.items():
            for row in spec["rows"]:
                if row.get("uncertain"):
                    continue
                for c in spec["columns"]:
                    v = row[c]
                    if v is None:
                        continue
                    forms = {repr(v), f"{v:.2f}", f"{v:.1f}", f"{v:.3f}", str(int(v)) if v == int(v) else ""}
                    forms.discard("")
                    assert any(f in corpus[paper] for f in forms), f"{paper}.{tid} {c}={v} not in the txt"
                    checked += 1
    assert checked > 200


# ------------------------------------------------------------------------------------------------- API and errors
def test_table_dataframe_shape_and_attrs():
    df = pn.table("art", "table4")
    assert list(df.columns) == ["dataset", "model", "method", "attribution", "IN (%)", "K (%)", "uncertain",
                                "note", "qualifier"]
    assert df["IN (%)"].dtype == float and df["uncertain"].dtype == bool
    assert df.attrs["paper"] == "art" and df.attrs["table"] == "table4" and "Table 4" in df.attrs["source"]
    empty = pn.table("inequality", "table5")
    assert empty.empty and "AutoAttack acc (%)" in empty.columns and empty.attrs["missing"]


def test_lookup_returns_one_row_and_eps_as_number():
    row = pn.lookup("inequality", "table1", dataset="cifar10", model="resnet18", eps=8 / 255)
    assert row["eps"] == "8/255" and row["Gini global (fraction)"] == 0.73 and row["uncertain"] is True
    row["eps"] = "changed"
    assert pn.lookup("inequality", "table1", dataset="cifar10", model="resnet18", eps="8/255")["eps"] == "8/255"


def test_to_long():
    long = pn.to_long("art")
    assert set(long.paper) == {"art"}
    ig = long[(long.table == "fig7") & (long.attribution == "ig")]
    assert ig.value.tolist() == [0.337, 0.422, 0.604]
    both = pn.to_long()
    assert set(both.paper) == {"art", "inequality"} and both.value.notna().all()
    assert len(pn.to_long(include_missing=True)) > len(both)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"unknown paper 'nope'.*'art', 'inequality'"):
        pn.table("nope", "table1")
    with pytest.raises(ValueError, match=r"unknown table 'table9'.*table1"):
        pn.lookup("art", "table9")
    with pytest.raises(ValueError, match=r"no identifier 'colour'.*dataset"):
        pn.lookup("art", "table1", colour="red")
    with pytest.raises(ValueError, match=r"method='TRADES'.*'ART'"):
        pn.lookup("art", "table1", method="TRADES")
    with pytest.raises(ValueError, match=r"4 rows match.*narrow"):
        pn.lookup("art", "table1", method="ART")
    with pytest.raises(ValueError, match="no row matches"):
        pn.lookup("art", "table1", dataset="svhn", method="IG-NORM")
    with pytest.raises(ValueError, match=r"no column 'IN'.*'IN \(%\)'"):
        pn.paper_value("art", "table1", "IN", dataset="cifar10", method="ART")
    with pytest.raises(ValueError, match="no transcribed rows"):
        pn.lookup("inequality", "table2")
    with pytest.raises(ValueError, match="unknown paper"):
        pn.tables("ART")


def test_tables_listing():
    assert pn.tables("art")[:3] == ["table1", "table2", "table3"]
    with_rows = pn.tables("inequality", with_rows=True)
    assert "table1" in with_rows and "table2" not in with_rows
    assert isinstance(pn.table("art", "table1"), pd.DataFrame)
