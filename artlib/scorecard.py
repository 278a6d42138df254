"""The scorecard: every paper number a notebook reproduces, paper vs reproduced vs difference, per table.

The table notebooks write their tables under ``figures/*.csv`` with the paper's value beside each reproduced one
(:func:`artlib.evaluate.with_paper_values` adds ``"paper <column>"``; some notebooks write ``"paper_<column>"``).
:func:`collect` reads every such CSV, pairs each numeric paper column with its reproduced column and returns one
row per (table, table row, metric) with a paper value. Tables that do not exist yet (notebooks not run) are simply
absent; a CSV without paper columns contributes nothing.

Pairing rule (:func:`paper_pairs`): ``"paper X"`` / ``"paper_X"`` pairs with column ``X`` (else ``X_mean`` /
``"X mean"``, a mean over seeds); failing that, with the column equal to ``X`` up to the number of attack steps
(``"paper PGD-40 acc (%)"`` with ``"PGD-10 acc (%)"``: the smoke profile runs fewer steps; the pairing is recorded in
``reproduced column``).

Tolerance rule (:func:`tolerance`): a reproduced value *agrees* with the paper when
``|reproduced - paper| <= max(ABS_TOL[unit], REL_TOL * |paper|)``, with ``ABS_TOL = 5`` percentage points for
percentages (columns with ``%`` in the name) and ``0.05`` for 0-1 quantities (fractions, Gini indices, error rates),
and ``REL_TOL = 10 %``. Only the paper profile (the papers' models, data and settings) is expected to meet it; smoke
numbers come from tiny models trained for seconds and are not paper-scale.

Example::

    >>> from artlib import scorecard
    >>> card = scorecard.collect()                 # long table over figures/*.csv
    >>> scorecard.summarize(card)                  # per table: numbers compared, within tolerance, mean |diff|
    >>> fig = scorecard.scatter(card)              # paper vs reproduced, one panel per table
    >>> scorecard.compare_settings(card)           # per table: which setting (paper / official / released) is closer

Settings (``../shared/DESIGN.md``, "Paper text vs the authors' code"): a table that evaluates the same rows under
several settings carries a ``setting`` column; :func:`compare_settings` takes the (row, metric) pairs present in more
than one setting and gives each setting's mean |difference| to the paper over exactly those numbers, so the
comparison is like for like; :func:`settings_text` turns it into the one sentence per table the notebooks print.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

import pandas as pd

__all__ = ["ABS_TOL", "REL_TOL", "COLUMNS", "ROW_REASONS", "PROFILE_MODELS", "annotate", "summary_line", "default_profile", "SMOKE_NOTE", "REFERENCE_NOTE", "PROFILE_NOTES", "unit_of", "tolerance", "paper_pairs", "collect_table",
           "collect", "summarize", "SETTING_COLUMNS", "compare_settings", "settings_text", "scatter", "save",
           "rule_text"]

#: Absolute tolerance per unit: percentage points for ``(%)`` columns, absolute for 0-1 quantities.
ABS_TOL = {"percent": 5.0, "fraction": 0.05}
#: Relative tolerance (of the paper's value); the larger of the two applies.
REL_TOL = 0.10
#: Columns of :func:`collect`'s result.
COLUMNS = ["table", "row", "metric", "reproduced column", "setting", "unit", "paper", "reproduced", "difference",
           "tolerance", "within tolerance", "paper number", "counted", "comparable", "reason"]
#: Why a pairing is not like for like, besides the profile's models (:data:`PROFILE_MODELS`): text in a table row.
ROW_REASONS = (("stand-in", "stand-in data"), ("regenerated", "stand-in data (regenerated locally)"),
               ("smoke-trained", "a smoke-trained fallback model (not in the zoo, not learned)"))
#: What each profile's models are, where they are not the papers' (every pairing of that profile is then not like
#: for like: another architecture and training set).
PROFILE_MODELS = {"smoke": "another architecture (the zoo's small CNNs on a few images)",
                  "reference": "another architecture (the zoo's small CNNs trained on the 10k-image subsets)"}
#: What the scorecard says on the smoke profile.
SMOKE_NOTE = ("SMOKE PROFILE (the CI pipeline check): these reproduced numbers are NOT paper-scale. They come from the "
              "reference zoo's small CNNs evaluated on a few dozen images with shortened attacks (and, for configs the "
              "zoo lacks, models trained for seconds); `--profile reference` gives the zoo's numbers on hundreds of "
              "images, `--profile paper` (the papers' models, data and settings, on a GPU) the paper-scale ones.")
REFERENCE_NOTE = ("REFERENCE PROFILE: reproduced numbers from the reference zoo's learned small CNNs (artlib.zoo: "
                  "trained by artlib on the shared real subsets, benchmarks/results/zoo.md), evaluated with the papers' "
                  "attack settings on hundreds of images. Not the papers' architectures or full datasets: a number "
                  "within tolerance is a coincidence of scale unless the pairing is like for like.")
#: The banner of each notebook profile's scorecard.
PROFILE_NOTES = {"smoke": SMOKE_NOTE, "reference": REFERENCE_NOTE,
                 "paper": "PAPER PROFILE: reproduced numbers from the papers' models, data and settings."}
# Tables written by the scorecard itself (never read back as input).
_OWN = ("scorecard", "scorecard_summary", "scorecard_settings")
_PREFIX = re.compile(r"^paper[ _](.+)$", re.IGNORECASE)
_STEPS = re.compile(r"(PGD|IFIA|SPSA)-\d+", re.IGNORECASE)


def rule_text() -> str:
    """The tolerance rule in one sentence (for the notebook and the Markdown table)."""
    return (f"|reproduced - paper| <= max({ABS_TOL['percent']:g} points, {REL_TOL:.0%} of the paper value) for "
            f"percentages, max({ABS_TOL['fraction']:g}, {REL_TOL:.0%} of the paper value) for 0-1 quantities")


def unit_of(column: str) -> str:
    """``"percent"`` when the column name carries ``%``, else ``"fraction"`` (0-1 quantities)."""
    return "percent" if "%" in column else "fraction"


def tolerance(paper, unit: str) -> float:
    """The allowed ``|reproduced - paper|`` for a paper value of ``unit`` (see the module docstring).

    Example:
        >>> round(tolerance(92.9, "percent"), 2), tolerance(0.3, "fraction")
        (9.29, 0.05)
    """
    if unit not in ABS_TOL:
        raise ValueError(f"unknown unit {unit!r}; choices: {list(ABS_TOL)}")
    return max(ABS_TOL[unit], REL_TOL * abs(float(paper)))


def _numeric(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def paper_pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    """``[(paper column, reproduced column), ...]`` of a table: every ``"paper X"`` / ``"paper_X"`` column holding at
    least one number, paired with ``X`` (or with ``X`` up to attack step counts); unpaired ones are left out."""
    pairs = []
    cols = [str(c) for c in df.columns]
    for col in cols:
        m = _PREFIX.match(col)
        if not m or _numeric(df[col]).notna().sum() == 0:
            continue
        base = m.group(1)
        match = next((c for c in (base, base + "_mean", base + " mean") if c in cols), None)
        if match is None:
            key = _STEPS.sub(lambda g: g.group(1).upper() + "-n", base)
            match = next((c for c in cols if c != col and not _PREFIX.match(c)
                          and _STEPS.sub(lambda g: g.group(1).upper() + "-n", c) == key and c != base), None)
        if match is not None and _numeric(df[match]).notna().any():
            pairs.append((col, match))
    return pairs


def _is_setting_column(column) -> bool:
    """``"setting"`` and the columns that say which setting produced a row (``"train setting"``, ``"eval setting"``):
    not part of a row's label, so the same row under two settings gets one label."""
    return str(column).lower().split()[-1:] == ["setting"]


def _row_labels(df: pd.DataFrame, skip: Iterable[str]) -> list[str]:
    skip = set(skip)
    keys = [c for c in df.columns if c not in skip and not _PREFIX.match(str(c)) and str(c).lower() != "paper"
            and not _is_setting_column(c) and not pd.api.types.is_numeric_dtype(df[c])]
    if not keys:
        return [str(i) for i in range(len(df))]
    return [" / ".join(str(v) for v in row if not (isinstance(v, float) and math.isnan(v)))
            for row in df[keys].itertuples(index=False)]


def collect_table(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The scorecard rows of one table (see :data:`COLUMNS`): one per row and paired metric with a paper value.

    Args:
        df: a table as written by a notebook (``figures/<table>.csv``).
        table: its name (the CSV stem).

    Returns:
        DataFrame with :data:`COLUMNS`; ``setting`` is the table's ``setting`` column where it has one (``paper`` /
        ``official`` / ``released``), else ``"paper"``.
    """
    pairs = paper_pairs(df)
    labels = _row_labels(df, skip=[r for _, r in pairs])
    setting = df["setting"].astype(str) if "setting" in df.columns else pd.Series(["paper"] * len(df), index=df.index)
    strings = df.select_dtypes(exclude="number")
    text = strings.fillna("").astype(str).agg(" ".join, axis=1).str.lower() if strings.shape[1] and len(df) else \
        pd.Series("", index=df.index)
    rows = []
    for paper_col, rep_col in pairs:
        unit = unit_of(paper_col)
        metric = _PREFIX.match(paper_col).group(1)
        steps = [f"attack steps differ ({rep_col} for the paper's {metric})"] if rep_col != metric and \
            _STEPS.search(metric) else []
        paper, rep = _numeric(df[paper_col]), _numeric(df[rep_col])
        for i, (p, r) in enumerate(zip(paper, rep)):
            if pd.isna(p):
                continue
            diff = r - p if pd.notna(r) else math.nan
            tol = tolerance(p, unit)
            why = steps + [w for key, w in ROW_REASONS if text is not None and key in text.iloc[i]]
            rows.append({"table": table, "row": labels[i], "metric": metric,
                         "reproduced column": rep_col, "setting": setting.iloc[i], "unit": unit, "paper": float(p),
                         "reproduced": float(r) if pd.notna(r) else math.nan, "difference": diff, "tolerance": tol,
                         "within tolerance": bool(pd.notna(diff) and abs(diff) <= tol), "paper number": "",
                         "counted": True, "comparable": not why, "reason": "; ".join(why)})
    return pd.DataFrame(rows, columns=COLUMNS)


def collect(figures: str | Path | None = None, tables: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The scorecard over every table CSV under ``figures`` (default :func:`artlib.plots.figures_dir`).

    Args:
        figures: folder of the notebooks' tables.
        tables: only these CSV stems (missing ones are skipped: their notebooks have not run); None: all.

    Returns:
        DataFrame with :data:`COLUMNS`, sorted by table (empty, with the columns, when no table has paper values).
    """
    from artlib import plots

    folder = Path(figures) if figures else plots.figures_dir()
    paths = sorted(folder.glob("*.csv")) if tables is None else [folder / f"{t}.csv" for t in tables]
    parts = []
    for path in paths:
        if path.stem in _OWN or not path.is_file():
            continue
        try:
            df = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        part = collect_table(df, path.stem)
        if len(part):
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(parts, ignore_index=True)


def _paper_of(table: str) -> Optional[str]:
    return "art" if table.startswith("art_") else "inequality" if table.startswith("ineq_") else None


def annotate(card: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Mark each pairing with the paper number it compares against, whether it is the one counted, and whether it
    is like for like.

    - ``paper number``: the transcribed value of ``paper_numbers.yaml`` it matches (``<paper>/<table>/<row ids>/
      <metric>``): the same value in that paper, disambiguated by the metric name where several match; empty when
      none or several remain.
    - ``counted``: each paper number counts once: the first pairing in table order (a main table before the figures
      and settings tables that repeat it; the ``paper`` setting before the authors' code's); a pairing without a
      paper number counts on its own.
    - ``comparable`` / ``reason``: ``False`` with the reasons where it is not like for like: the profile's models
      (:data:`PROFILE_MODELS`), attack steps that differ, stand-in data or a smoke-trained model (:data:`ROW_REASONS`),
      a paper number marked ``uncertain``.

    Example::

        >>> card = annotate(collect(), "reference")
        >>> card[card.counted & card.comparable]          # the numbers the summary line counts
    """
    from artlib import paper_numbers
    if profile not in PROFILE_NOTES:
        raise ValueError(f"unknown profile {profile!r}; choices: {list(PROFILE_NOTES)}")
    card = card.copy()
    if card.empty:
        return card
    long = paper_numbers.to_long()
    ids = [c for c in paper_numbers.ID_KEYS if c in long.columns]
    long["key"] = [f"{r['paper']}/{r['table']}/" + "/".join(str(r[k]) for k in ids if pd.notna(r[k])) +
                   f"/{r['metric']}" for _, r in long.iterrows()]
    keys, uncertain = [], []
    for _, r in card.iterrows():
        cand = long[(long.paper == _paper_of(r.table)) & ((long.value - r.paper).abs() < 1e-9)]
        if len(cand) > 1:
            cand = cand[cand.metric == r.metric] if (cand.metric == r.metric).any() else cand
        own = re.search(r"(table\d+|fig\d+)", r.table)
        if len(cand) > 1 and own and (cand.table == own.group(1)).any():
            cand = cand[cand.table == own.group(1)]
        if len(cand) > 1 and cand.metric.nunique() == 1:     # the paper prints the number again (Table 5's ART row)
            cand = cand.iloc[:1]
        keys.append(cand.key.iloc[0] if len(cand) == 1 and r.paper != 0 else "")
        uncertain.append(bool(len(cand) == 1 and cand.uncertain.iloc[0]))
    card["paper number"] = keys
    order = card.assign(_settings=card.table.str.contains("settings"), _official=card.setting != "paper",
                        _figure=~card.table.str.contains(r"table\d")) \
        .sort_values(["_settings", "_official", "_figure", "table"], kind="stable").index
    seen, counted = set(), pd.Series(True, index=card.index)
    for i in order:
        k = card.at[i, "paper number"]
        if k and k in seen:
            counted[i] = False
        seen.add(k)
    card["counted"] = counted
    reasons = []
    for (_, r), unc in zip(card.iterrows(), uncertain):
        why = [PROFILE_MODELS[profile]] if profile in PROFILE_MODELS else []
        why += [w for w in str(r.reason).split("; ") if w and w != "nan"]
        why += ["paper number marked uncertain in paper_numbers.yaml"] if unc else []
        reasons.append("; ".join(dict.fromkeys(why)))
    card["reason"] = reasons
    card["comparable"] = card.reason == ""
    return card[COLUMNS]


def summarize(card: pd.DataFrame) -> pd.DataFrame:
    """Per table: pairings, paper numbers counted (once each), how many agree within the tolerance, the comparable
    (like-for-like) ones and how many of those agree, and the mean |difference|."""
    cols = ["table", "numbers", "counted", "within tolerance", "comparable", "comparable within", "share within",
            "mean |difference|"]
    if card.empty:
        return pd.DataFrame(columns=cols)
    card = card.assign(_c=card["counted"].astype(bool))
    g = card.groupby("table", sort=True)
    out = pd.DataFrame({"numbers": g.size(), "counted": g["_c"].sum().astype(int),
                        "within tolerance": g.apply(lambda t: int((t._c & t["within tolerance"].astype(bool)).sum())),
                        "comparable": g.apply(lambda t: int((t._c & t.comparable.astype(bool)).sum())),
                        "comparable within": g.apply(lambda t: int((t._c & t.comparable.astype(bool)
                                                                    & t["within tolerance"].astype(bool)).sum())),
                        "mean |difference|": g["difference"].apply(lambda d: d.abs().mean())}).reset_index()
    out["share within"] = out["within tolerance"] / out["counted"].where(out["counted"] > 0)
    return out[cols]


def default_profile(figures=None) -> str:
    """The profile whose tables a figures folder holds when the caller does not say: ``"reference"`` for the
    committed ``figures/`` (written by ``make reproduce``), ``"smoke"`` for any other (CI's ``$ARTLIB_FIGURES``)."""
    from artlib import plots
    folder = Path(figures) if figures else plots.figures_dir()
    return "reference" if folder.resolve() == plots.FIGURES.resolve() else "smoke"


def summary_line(card: pd.DataFrame, profile: str) -> str:
    """One line per profile: ``"reference: N of M comparable numbers within tolerance (...)"``, each paper number
    counted once, with the count of the others and their reasons."""
    c = card[card["counted"].astype(bool)]
    comp = c[c.comparable.astype(bool)]
    within = int(comp["within tolerance"].astype(bool).sum())
    reasons = pd.Series([w for r in c[~c.comparable.astype(bool)].reason for w in str(r).split("; ") if w])
    why = ", ".join(f"{k}: {v}" for k, v in reasons.value_counts().items())
    return (f"{profile}: {within} of {len(comp)} comparable numbers within tolerance ({len(c)} paper numbers, each "
            f"counted once, of {len(card)} pairings; {len(c) - len(comp)} not like for like" +
            (f" -- {why}" if why else "") + ")")


SETTING_COLUMNS = ["table", "setting", "numbers", "within tolerance", "mean |difference|", "closest"]


def compare_settings(card: pd.DataFrame) -> pd.DataFrame:
    """Per table evaluated under several settings: each setting's mean |reproduced - paper| over the (row, metric)
    pairs that **every** setting of that table reproduces (like for like), and which setting is closest.

    Args:
        card: :func:`collect`'s result.

    Returns:
        DataFrame with :data:`SETTING_COLUMNS`, one row per (table, setting), tables with one setting left out;
        ``numbers`` is the count of shared (row, metric) pairs with a reproduced value, ``closest`` is True for the
        setting(s) with the smallest mean |difference| of the table.

    Example:
        >>> card = pd.DataFrame({"table": ["t"] * 4, "row": ["a", "a", "b", "b"], "metric": ["IN (%)"] * 4,
        ...                      "setting": ["paper", "official"] * 2, "paper": [90.0] * 4,
        ...                      "reproduced": [60.0, 70.0, 50.0, 80.0],
        ...                      "within tolerance": [False, False, False, True]})
        >>> compare_settings(card)[["setting", "numbers", "mean |difference|", "closest"]].values.tolist()
        [['official', 2, 15.0, True], ['paper', 2, 35.0, False]]
    """
    parts = []
    if card.empty:
        return pd.DataFrame(columns=SETTING_COLUMNS)
    card = card.dropna(subset=["reproduced"])
    for table, t in card.groupby("table", sort=True):
        settings = sorted(t["setting"].unique())
        if len(settings) < 2:
            continue
        keyed = t.set_index(["row", "metric"])
        shared = None
        for s in settings:
            idx = keyed[keyed["setting"] == s].index
            shared = idx if shared is None else shared.intersection(idx)
        shared = shared.unique()
        if not len(shared):
            continue
        rows = []
        for s in settings:
            m = keyed[(keyed["setting"] == s)]
            m = m[m.index.isin(shared)]
            diff = (m["reproduced"] - m["paper"]).abs()
            rows.append({"table": table, "setting": s, "numbers": int(len(m)),
                         "within tolerance": int(m["within tolerance"].astype(bool).sum()),
                         "mean |difference|": float(diff.mean())})
        part = pd.DataFrame(rows)
        best = part["mean |difference|"].min()
        part["closest"] = (part["mean |difference|"] - best).abs() <= 1e-12
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=SETTING_COLUMNS)
    return pd.concat(parts, ignore_index=True)[SETTING_COLUMNS]


def settings_text(comparison: pd.DataFrame, units: str = "") -> list[str]:
    """One sentence per table of :func:`compare_settings`' result: which setting comes closer to the paper and by
    how much, e.g. ``"art_table1: setting 'official' comes closer to the paper's numbers than 'paper' (mean
    |difference| 30.1 vs 33.4 over the same 24 numbers; 2 vs 1 within tolerance)"``. ``units`` is appended to the
    numbers (e.g. ``" points"``)."""
    out = []
    for table, part in comparison.groupby("table", sort=True):
        part = part.sort_values(["mean |difference|", "setting"])
        first, rest = part.iloc[0], part.iloc[1:]
        others = ", ".join(repr(s) for s in rest["setting"])
        diffs = " vs ".join(f"{v:.3g}" for v in part["mean |difference|"]) + units
        within = " vs ".join(str(int(v)) for v in part["within tolerance"])
        verb = "comes as close to the paper's numbers as" if bool(rest["closest"].any()) else \
            "comes closer to the paper's numbers than"
        out.append(f"{table}: setting {first['setting']!r} {verb} {others} (mean |difference| {diffs} over the same "
                   f"{int(first['numbers'])} numbers; {within} within tolerance)")
    return out


def scatter(card: pd.DataFrame, ncols: int = 4, title: Optional[str] = None):
    """Paper (x) vs reproduced (y), one panel per table, with the diagonal and the absolute tolerance band; colour
    per metric. Returns the matplotlib Figure (a single "no tables yet" panel when ``card`` is empty)."""
    import matplotlib.pyplot as plt
    import numpy as np

    tables = sorted(card["table"].unique()) if len(card) else []
    n = max(len(tables), 1)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    if not tables:
        axes[0][0].text(0.5, 0.5, "no table with paper values yet", ha="center", va="center")
        axes[0][0].axis("off")
    for ax, name in zip(axes.flat, tables):
        t = card[card["table"] == name]
        both = pd.concat([t["paper"], t["reproduced"]]).dropna()
        lo, hi = float(both.min()), float(both.max())
        pad = 0.05 * (hi - lo or 1.0)
        lo, hi = lo - pad, hi + pad
        tol = ABS_TOL[t["unit"].iloc[0]]
        line = np.array([lo, hi])
        ax.fill_between(line, line - tol, line + tol, color="0.9", label=f"±{tol:g} (abs. tolerance)")
        ax.plot(line, line, color="0.5", lw=1)
        for metric, m in t.groupby("metric", sort=False):
            ax.scatter(m["paper"], m["reproduced"], s=18, label=metric)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("paper", fontsize=8)
        ax.set_ylabel("reproduced", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save(card: pd.DataFrame, profile: str, name: str = "scorecard", out_dir: str | Path | None = None) -> list[Path]:
    """Write the scorecard as ``<figures>/<name>.csv`` and ``.md`` (:func:`artlib.plots.save_table`) with a
    ``profile`` column; the Markdown file opens with the profile, its note (:data:`PROFILE_NOTES`: what the
    reproduced numbers are on that profile) and the tolerance rule. Returns the two paths."""
    from artlib import plots
    from artlib.checkpoints import atomic_write

    if profile not in PROFILE_NOTES:
        raise ValueError(f"unknown profile {profile!r}; choices: {list(PROFILE_NOTES)}")
    paths = plots.save_table(card.assign(profile=profile), name, out_dir)
    md = paths[1]
    head = [f"# Scorecard: paper vs reproduced ({profile} profile)", ""]
    if PROFILE_NOTES[profile]:
        head += [f"**{PROFILE_NOTES[profile]}**", ""]
    head += [f"Tolerance rule: {rule_text()}; `difference` = reproduced - paper.", ""]
    if {"counted", "comparable"} <= set(card.columns) and len(card):
        head += [summary_line(card, profile) + ".", ""]
    text = "\n".join(head) + "\n" + md.read_text(encoding="utf-8")
    atomic_write(md, lambda f: f.write(text.encode()))
    return paths
