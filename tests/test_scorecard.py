"""artlib.scorecard: pairing paper columns with reproduced ones, the tolerance rule, tables missing."""
import math

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from artlib import evaluate, scorecard  # noqa: E402


def test_tolerance_rule():
    assert scorecard.tolerance(40.0, "percent") == 5.0                 # absolute floor
    assert scorecard.tolerance(92.9, "percent") == pytest.approx(9.29)  # 10 % of the paper value
    assert scorecard.tolerance(-0.3, "fraction") == 0.05
    assert scorecard.tolerance(0.9, "fraction") == pytest.approx(0.09)
    with pytest.raises(ValueError, match="'kelvin'.*percent"):
        scorecard.tolerance(1.0, "kelvin")
    assert scorecard.unit_of("paper IN (%)") == "percent" and scorecard.unit_of("paper_gini_global") == "fraction"
    assert "5 points" in scorecard.rule_text()


def test_pairs_prefixes_step_counts_and_text_columns():
    df = pd.DataFrame({"dataset": ["cifar10"], "IN (%)": [60.0], "PGD-10 acc (%)": [30.0], "gini": [0.5],
                       "paper IN (%)": [92.9], "paper PGD-40 acc (%)": [37.58], "paper_gini": [0.7],
                       "paper": ["not in the text"], "paper_model": ["resnet18"], "paper K (%)": [math.nan],
                       "paper Top-1 (%)": [50.0]})
    assert scorecard.paper_pairs(df) == [("paper IN (%)", "IN (%)"), ("paper PGD-40 acc (%)", "PGD-10 acc (%)"),
                                         ("paper_gini", "gini")]
    seeds = pd.DataFrame({"label": ["art"], "IN_mean": [0.5], "IN_std": [0.1], "paper IN": [0.93]})
    assert scorecard.paper_pairs(seeds) == [("paper IN", "IN_mean")]


def test_collect_table_values_and_setting():
    df = pd.DataFrame({"dataset": ["cifar10", "cifar10", "gtsrb"], "method": ["ART", "Natural", "ART"],
                       "setting": ["paper", "official", "paper"], "IN (%)": [90.0, 10.0, math.nan],
                       "n": [10, 10, 10]})
    df = evaluate.with_paper_values(df, "table1", ["IN (%)"])            # the notebooks' way of adding paper values
    card = scorecard.collect_table(df, "art_table1")
    assert list(card.columns) == scorecard.COLUMNS
    assert list(card["row"]) == ["cifar10 / ART", "cifar10 / Natural", "gtsrb / ART"]
    assert list(card["paper"]) == [92.90, 40.25, 91.96]
    assert card["difference"].iloc[0] == pytest.approx(90.0 - 92.9)
    assert list(card["within tolerance"]) == [True, False, False]        # |-2.9| <= 9.29; |-30.25| > 5; NaN: no
    assert list(card["setting"]) == ["paper", "official", "paper"]
    assert math.isnan(card["reproduced"].iloc[2])
    no_setting = scorecard.collect_table(df.drop(columns="setting"), "t")
    assert set(no_setting["setting"]) == {"paper"}


def test_compare_settings_is_like_for_like_and_names_the_closer_setting():
    # Table 1 style: three rows under "paper", only two of them under "official" (+ a train-setting column that must
    # not split the row labels); gtsrb/Natural is in one setting only and must not enter the comparison.
    df = pd.DataFrame({"dataset": ["cifar10", "cifar10", "gtsrb", "cifar10", "cifar10"],
                       "method": ["Natural", "ART", "Natural", "Natural", "ART"],
                       "setting": ["paper", "paper", "paper", "official", "official"],
                       "train setting": ["paper", "paper", "paper", "paper", "official"],
                       "IN (%)": [30.0, 60.0, 0.0, 45.0, 80.0], "K (%)": [40.0, 70.0, 0.0, 45.0, 90.0]})
    df = evaluate.with_paper_values(df, "table1", ["IN (%)", "K (%)"])
    card = pd.concat([scorecard.collect_table(df, "art_table1"),
                      scorecard.collect_table(df[df.setting == "paper"], "one_setting")], ignore_index=True)
    assert set(card[card.table == "art_table1"]["row"]) == {"cifar10 / Natural", "cifar10 / ART", "gtsrb / Natural"}
    cmp = scorecard.compare_settings(card)
    assert list(cmp.columns) == scorecard.SETTING_COLUMNS
    assert set(cmp["table"]) == {"art_table1"}                          # one setting only: nothing to compare
    shared = card[(card.table == "art_table1") & (card.row != "gtsrb / Natural")]
    for s, row in cmp.set_index("setting").iterrows():
        part = shared[shared.setting == s]
        assert row["numbers"] == 4
        assert row["mean |difference|"] == pytest.approx((part.reproduced - part.paper).abs().mean())
        assert row["within tolerance"] == int(part["within tolerance"].sum())
    paper_gap = (abs(30 - 40.25) + abs(40 - 49.17) + abs(60 - 92.90) + abs(70 - 91.76)) / 4
    assert cmp.set_index("setting").loc["paper", "mean |difference|"] == pytest.approx(paper_gap)
    assert list(cmp[cmp.closest].setting) == ["official"]
    (text,) = scorecard.settings_text(cmp, " points")
    assert text.startswith("art_table1: setting 'official' comes closer to the paper's numbers than 'paper' (mean "
                           "|difference| ")
    assert "over the same 4 numbers" in text and " points" in text
    tie = cmp.assign(**{"mean |difference|": 1.0, "closest": True})
    assert "comes as close to the paper's numbers as" in scorecard.settings_text(tie)[0]
    assert scorecard.compare_settings(scorecard.collect_table(df.iloc[:0], "t")).empty


def test_collect_reads_csvs_tolerates_missing_and_skips_its_own(tmp_path):
    assert scorecard.collect(tmp_path).empty                            # no notebook ran yet
    assert list(scorecard.collect(tmp_path).columns) == scorecard.COLUMNS
    pd.DataFrame({"model": ["a", "b"], "error_rate": [0.5, 0.2], "paper_error_rate": [0.45, 0.6]}).to_csv(
        tmp_path / "t2.csv", index=False)
    pd.DataFrame({"x": [1.0]}).to_csv(tmp_path / "no_paper.csv", index=False)
    pd.DataFrame({"metric": ["m"], "paper_m": [1.0], "m": [1.0]}).to_csv(tmp_path / "scorecard.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    card = scorecard.collect(tmp_path)
    assert list(card["table"]) == ["t2", "t2"] and list(card["within tolerance"]) == [True, False]
    assert scorecard.collect(tmp_path, tables=["t2", "not_run_yet"]).shape[0] == 2
    summary = scorecard.summarize(card)
    assert summary.to_dict("records") == [{"table": "t2", "numbers": 2, "counted": 2, "within tolerance": 1,
                                           "comparable": 2, "comparable within": 1, "share within": 0.5,
                                           "mean |difference|": pytest.approx(0.225)}]
    assert scorecard.summarize(scorecard.collect(tmp_path / "none")).empty


def test_scatter_has_one_panel_per_table(tmp_path):
    card = pd.concat([scorecard.collect_table(pd.DataFrame({"a (%)": [1.0, 2.0], "paper a (%)": [1.5, 2.5]}), "t1"),
                      scorecard.collect_table(pd.DataFrame({"g": [0.1], "paper_g": [0.2]}), "t2")])
    fig = scorecard.scatter(card)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["t1", "t2"]
    empty = scorecard.scatter(scorecard.collect(tmp_path))
    assert "no table" in empty.axes[0].texts[0].get_text()


def test_save_writes_csv_and_markdown_with_the_smoke_warning(tmp_path):
    card = scorecard.collect_table(pd.DataFrame({"a (%)": [1.0], "paper a (%)": [1.5]}), "t1")
    csv, md = scorecard.save(card, "smoke", out_dir=tmp_path)
    assert pd.read_csv(csv)["profile"].tolist() == ["smoke"]
    text = md.read_text()
    assert "NOT paper-scale" in text and "Tolerance rule" in text and "| t1 " in text
    _, md = scorecard.save(card, "paper", out_dir=tmp_path)
    assert "NOT paper-scale" not in md.read_text()
    csv, md = scorecard.save(card, "reference", out_dir=tmp_path)   # the profile the committed figures come from
    assert pd.read_csv(csv)["profile"].tolist() == ["reference"]
    assert md.read_text().startswith("# Scorecard: paper vs reproduced (reference profile)\n\n**REFERENCE PROFILE:")
    with pytest.raises(ValueError, match=r"'tiny'; choices: \['smoke', 'reference', 'paper'\]"):
        scorecard.save(card, "tiny", out_dir=tmp_path)


def _tables(tmp_path):
    """Table 1 (ART CIFAR-10 IN, paper 92.9) in two settings, repeated by a figure and a settings table; a PGD-10
    column paired with the paper's PGD-40; a stand-in row; an uncertain Inequality number (paper_numbers.yaml)."""
    from artlib import paper_numbers
    unc = paper_numbers.to_long("inequality")
    unc = unc[unc.uncertain].iloc[0]
    pd.DataFrame({"dataset": ["cifar10"] * 2, "method": ["ART"] * 2, "setting": ["paper", "official"],
                  "IN (%)": [90.0, 60.0], "paper IN (%)": [92.9, 92.9], "PGD-10 acc (%)": [40.0, 41.0],
                  "paper PGD-40 acc (%)": [37.58, 37.58]}).to_csv(tmp_path / "art_table1.csv", index=False)
    pd.DataFrame({"method": ["ART"], "metric": ["IN"], "mean (%)": [91.0], "paper mean (%)": [92.9]}).to_csv(
        tmp_path / "art_fig11_boxplot.csv", index=False)
    pd.DataFrame({"model": ["x"], "ground truth": ["CUB box mask (stand-in)"], "Top-1 Seg": [0.5],
                  "paper Top-1 Seg": [0.604]}).to_csv(tmp_path / "art_fig7_segmentation.csv", index=False)
    pd.DataFrame({"model": ["m"], unc.metric: [unc.value], "paper " + unc.metric: [unc.value]}).to_csv(
        tmp_path / "ineq_tablex_cifar10.csv", index=False)
    return unc


def test_each_paper_number_counts_once_main_table_and_paper_setting_first(tmp_path):
    _tables(tmp_path)
    card = scorecard.annotate(scorecard.collect(tmp_path), "paper")
    in_rows = card[card.paper == 92.9]
    assert len(in_rows) == 3 and in_rows["paper number"].nunique() == 1 and in_rows.counted.sum() == 1
    first = in_rows[in_rows.counted].iloc[0]
    assert first.table == "art_table1" and first.setting == "paper"
    # the summary counts paper numbers, not pairings: within tolerance once, although all three pairings are
    s = scorecard.summarize(card).set_index("table")
    assert s.loc["art_table1", "counted"] == 2 and s.loc["art_fig11_boxplot", "counted"] == 0


def test_comparability_reasons_and_the_summary_line(tmp_path):
    unc = _tables(tmp_path)
    card = scorecard.annotate(scorecard.collect(tmp_path), "paper")
    by = {(r.table, r.metric): r for r in card[card.counted].itertuples()}
    assert by[("art_table1", "IN (%)")].comparable
    assert "attack steps differ (PGD-10 acc (%) for the paper's PGD-40 acc (%))" in \
        by[("art_table1", "PGD-40 acc (%)")].reason
    assert by[("art_fig7_segmentation", "Top-1 Seg")].reason == "stand-in data"
    assert by[("ineq_tablex_cifar10", unc.metric)].reason == "paper number marked uncertain in paper_numbers.yaml"
    line = scorecard.summary_line(card, "paper")
    assert line.startswith("paper: 1 of 1 comparable numbers within tolerance (4 paper numbers, each counted once, "
                           "of 7 pairings; 3 not like for like")
    ref = scorecard.annotate(scorecard.collect(tmp_path), "reference")
    assert not ref.comparable.any() and ref.reason.str.startswith("another architecture").all()
    assert scorecard.summary_line(ref, "reference").startswith("reference: 0 of 0 comparable numbers")
    with pytest.raises(ValueError, match="unknown profile 'ref'"):
        scorecard.annotate(card, "ref")
