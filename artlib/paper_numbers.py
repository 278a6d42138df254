"""The numbers the two papers report, as data: ``artlib/paper_numbers.yaml`` and small readers over it.

Every notebook shows the paper's values beside its reproduced ones, and the scorecard (``99_scorecard.ipynb``)
compares them; both read them from here, so each printed number is transcribed once. The YAML holds, per paper
(``"art"``: ART, ECCV 2020; ``"inequality"``: Inequality phenomenon, ICLR 2023) and per table id (``"table1"``,
``"fig7"``, ``"a9_occlusion_cifar10"``, ...), a ``caption``, the ``source`` (section and line of
``../shared/papers/<paper>.txt``), the ``columns`` (metric names with their unit: ``"(%)"`` percent as printed,
``"(fraction)"`` 0-1 as printed) and the ``rows``. A row has identifier keys (:data:`ID_KEYS`: ``dataset`` as in
:data:`artlib.data.DATASETS`, ``model`` as in :data:`artlib.models.ARCHS` where the paper is unambiguous,
``method`` as printed, ``eps`` as a string like ``"8/255"``, ...), one value per column (``None`` where the paper
reports none) and optional :data:`META_KEYS` (``uncertain``, ``note``, ``qualifier``). Tables whose body the text
extraction lost keep their caption and columns, ``rows: []`` and a ``missing`` reason, so a notebook can say
"no paper number" instead of inventing one.

Functions:

* :func:`load` — the whole YAML as a dict (a fresh copy each call).
* :func:`tables` — the table ids of a paper.
* :func:`table` — one table as a :class:`pandas.DataFrame`, one row per printed row, one column per metric.
* :func:`lookup` — the one row matching identifier values, as a dict.
* :func:`paper_value` — one number: ``paper_value("art", "table1", "IN (%)", dataset="cifar10", method="ART")``.
* :func:`to_long` — every value of one or both papers in long form (paper, table, identifiers, metric, value), for
  the scorecard.
* :func:`validate` — the structural checks the YAML must pass (used by the tests).

Example::

    >>> from artlib import paper_numbers as pn
    >>> pn.paper_value("art", "fig7", "Top-1 Seg (fraction)", method="ART", attribution="ig")
    0.604
    >>> pn.table("art", "table1").query("dataset == 'cifar10'")[["method", "IN (%)", "K (%)"]]
    >>> pn.lookup("inequality", "table1", dataset="cifar10", model="resnet18", eps="8/255")["Gini global (fraction)"]
    0.73
"""
from __future__ import annotations

import copy
import functools
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import yaml

__all__ = ["PATH", "PAPERS", "ID_KEYS", "META_KEYS", "load", "tables", "table", "lookup", "paper_value", "to_long",
           "validate"]

#: The YAML file (shipped as package data).
PATH = Path(__file__).with_name("paper_numbers.yaml")
#: Paper keys: ART (Singh et al., ECCV 2020) and Inequality (Duan et al., ICLR 2023).
PAPERS = ("art", "inequality")
#: Keys that identify a row (which model / setting a number belongs to), in the order tables show them.
ID_KEYS = ("dataset", "model", "method", "variant", "eps", "attribution", "attack", "norm", "corruption", "pixels",
           "group", "class_name", "input")
#: Per-row annotations: ``uncertain`` (read ambiguously, or not checkable against the project's txt), ``note``,
#: ``qualifier`` (``">"`` a lower bound, ``"~"`` approximate, as the text words it).
META_KEYS = ("uncertain", "note", "qualifier")
_TABLE_KEYS = {"caption", "source", "columns", "rows", "note", "missing"}


@functools.lru_cache(maxsize=1)
def _raw() -> dict:
    with open(PATH, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    validate(data)
    return data


def load() -> dict:
    """All transcribed paper numbers, ``{paper: {table_id: {caption, source, columns, rows, ...}}}``.

    Reads (once) and validates ``artlib/paper_numbers.yaml``; returns a deep copy, so callers may modify it freely.

    Returns:
        dict: paper key (``"art"``, ``"inequality"``) -> table id -> table mapping; each row a dict of identifier
        keys, one value per column (float / int / ``None``) and optional ``uncertain`` / ``note`` / ``qualifier``.

    Example::

        >>> from artlib import paper_numbers
        >>> paper_numbers.load()["art"]["table1"]["columns"]
        ['IN (%)', 'K (%)', 'Nat acc (%)', 'PGD-40 acc (%)']
    """
    return copy.deepcopy(_raw())


def _paper(paper: str) -> dict:
    data = _raw()
    if paper not in data:
        raise ValueError(f"unknown paper {paper!r}; choices: {list(data)}")
    return data[paper]


def _table(paper: str, table_id: str) -> dict:
    tabs = _paper(paper)
    if table_id not in tabs:
        raise ValueError(f"unknown table {table_id!r} for paper {paper!r}; choices: {list(tabs)}")
    return tabs[table_id]


def tables(paper: str, with_rows: bool = False) -> list[str]:
    """Table ids of ``paper`` in file order.

    Args:
        paper (str): ``"art"`` or ``"inequality"``.
        with_rows (bool, optional): only tables that have rows (leave out those whose body is ``missing``).
            Default: False.

    Returns:
        list[str]: e.g. ``["table1", "table2", ..., "fig7", ...]``.

    Example::

        >>> paper_numbers.tables("inequality", with_rows=True)[:2]
        ['table1', 'sec1_summary']
    """
    return [t for t, spec in _paper(paper).items() if spec["rows"] or not with_rows]


def _id_keys(spec: dict) -> list[str]:
    present = {k for row in spec["rows"] for k in row}
    return [k for k in ID_KEYS if k in present]


def table(paper: str, table_id: str) -> pd.DataFrame:
    """One paper table as a DataFrame: one row per transcribed row, one column per metric.

    Columns are the identifier keys the table uses (in :data:`ID_KEYS` order), then the table's metric columns
    exactly as named in the YAML (e.g. ``"IN (%)"``), then ``uncertain`` (bool), ``note`` and ``qualifier``.
    Missing cells are NaN / None. The DataFrame's ``attrs`` carry ``paper``, ``table``, ``caption``, ``source``,
    ``note`` and ``missing``. A table whose body is missing gives an empty DataFrame with those columns.

    Args:
        paper (str): ``"art"`` or ``"inequality"``.
        table_id (str): one of :func:`tables` (``paper``).

    Returns:
        pandas.DataFrame: ``[n_rows, n_id_keys + n_columns + 3]``.

    Raises:
        ValueError: unknown paper or table (the message lists the choices).

    Example::

        >>> df = paper_numbers.table("art", "table1")
        >>> df.loc[(df.dataset == "gtsrb") & (df.method == "ART"), "IN (%)"].item()
        91.96
    """
    spec = _table(paper, table_id)
    ids, cols = _id_keys(spec), list(spec["columns"])
    records = [{**{k: row.get(k) for k in ids}, **{c: row.get(c) for c in cols},
                "uncertain": bool(row.get("uncertain", False)), "note": row.get("note"),
                "qualifier": row.get("qualifier")} for row in spec["rows"]]
    df = pd.DataFrame.from_records(records, columns=ids + cols + list(META_KEYS))
    for c in cols:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["uncertain"] = df["uncertain"].astype(bool)
    text = ids + ["note", "qualifier"]
    df[text] = df[text].astype(object).where(df[text].notna(), None)
    df.attrs.update(paper=paper, table=table_id, caption=spec["caption"], source=spec["source"],
                    note=spec.get("note"), missing=spec.get("missing"))
    return df


def _eps_value(v: Any) -> Optional[float]:
    """``"8/255"`` / ``"1.0"`` / ``8/255`` -> float; None when not a number."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(Fraction(str(v).strip()))
    except (ValueError, ZeroDivisionError):
        return None


def _matches(row_value: Any, wanted: Any, key: str) -> bool:
    if row_value == wanted:
        return True
    if key == "eps" and not isinstance(wanted, str):   # eps=8/255 (a float) matches "8/255"
        a, b = _eps_value(row_value), _eps_value(wanted)
        return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))
    return False


def lookup(paper: str, table_id: str, **match) -> dict:
    """The single row of a paper table whose identifiers equal ``match``.

    Args:
        paper (str): ``"art"`` or ``"inequality"``.
        table_id (str): one of :func:`tables` (``paper``).
        **match: identifier values, e.g. ``dataset="cifar10", method="ART"``. Strings compare exactly; ``eps`` may
            also be given as a number (``eps=8/255`` matches ``"8/255"``). Keys must be identifiers the table uses.

    Returns:
        dict: a copy of the row (identifiers, one value per column, and ``uncertain`` / ``note`` / ``qualifier``
        when set).

    Raises:
        ValueError: unknown paper / table; a key the table does not use (lists its identifier keys); a value no row
            has (lists the values present); no row or several rows matching (lists the candidates' identifiers);
            a table whose body is missing.

    Example::

        >>> paper_numbers.lookup("art", "table2", model="vgg-gap", method="ART")["Grad GT-known Loc (%)"]
        76.5
    """
    spec = _table(paper, table_id)
    if not spec["rows"]:
        raise ValueError(f"{paper} {table_id} has no transcribed rows: {spec.get('missing', 'no values')}")
    ids = _id_keys(spec)
    for key, wanted in match.items():
        if key not in ids:
            raise ValueError(f"{paper} {table_id} has no identifier {key!r}; choices: {ids}")
        values = [row.get(key) for row in spec["rows"]]
        if not any(_matches(v, wanted, key) for v in values):
            raise ValueError(f"{paper} {table_id}: no row with {key}={wanted!r}; choices: "
                             f"{list(dict.fromkeys(values))}")
    hits = [row for row in spec["rows"] if all(_matches(row.get(k), v, k) for k, v in match.items())]
    if len(hits) != 1:
        cands = [{k: row.get(k) for k in ids if row.get(k) is not None} for row in (hits or spec["rows"])]
        what = "no row matches" if not hits else f"{len(hits)} rows match"
        raise ValueError(f"{paper} {table_id}: {what} {match}; narrow it with one of: {cands}")
    return dict(hits[0])


def paper_value(paper: str, table_id: str, column: str, **match) -> Optional[float]:
    """One number the paper reports: the ``column`` value of the row :func:`lookup` finds.

    Args:
        paper (str): ``"art"`` or ``"inequality"``.
        table_id (str): one of :func:`tables` (``paper``).
        column (str): one of the table's ``columns``, e.g. ``"IN (%)"`` (units as printed).
        **match: identifier values selecting one row (see :func:`lookup`).

    Returns:
        float or None: the value as printed (percent or fraction per the column name); None where the paper
        reports no value for that cell.

    Raises:
        ValueError: unknown column (lists the table's columns), or any :func:`lookup` error.

    Example::

        >>> paper_numbers.paper_value("art", "table1", "PGD-40 acc (%)", dataset="cifar10", method="PGD-10")
        44.07
    """
    cols = _table(paper, table_id)["columns"]
    if column not in cols:
        raise ValueError(f"{paper} {table_id} has no column {column!r}; choices: {cols}")
    value = lookup(paper, table_id, **match).get(column)
    return None if value is None else float(value)


def to_long(paper: Optional[str] = None, include_missing: bool = False) -> pd.DataFrame:
    """Every transcribed value in long form, one row per (table row, metric), for the scorecard.

    Args:
        paper (str, optional): ``"art"`` or ``"inequality"``; both when None. Default: None.
        include_missing (bool, optional): keep cells the paper leaves empty (value NaN). Default: False.

    Returns:
        pandas.DataFrame: columns ``paper, table, <ID_KEYS>, metric, value, uncertain, note, qualifier``.

    Example::

        >>> long = paper_numbers.to_long("art")
        >>> long[(long.table == "fig7") & (long.attribution == "ig")].value.tolist()
        [0.337, 0.422, 0.604]
    """
    papers = list(PAPERS) if paper is None else [paper]
    out = []
    for p in papers:
        for t in tables(p, with_rows=True):
            df = table(p, t)
            cols = _table(p, t)["columns"]
            ids = [c for c in df.columns if c in ID_KEYS]
            melted = df.melt(id_vars=ids + list(META_KEYS), value_vars=cols, var_name="metric", value_name="value")
            melted.insert(0, "table", t)
            melted.insert(0, "paper", p)
            out.append(melted)
    cols = ["paper", "table", *ID_KEYS, "metric", "value", *META_KEYS]
    long = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)
    long = long.reindex(columns=cols)
    if not include_missing:
        long = long[long["value"].notna()].reset_index(drop=True)
    return long


def validate(data: dict) -> None:
    """Check the structure of a paper-numbers mapping; raise ValueError naming the first problem.

    Checks: top-level keys are :data:`PAPERS`; each table has ``caption``, ``source``, ``columns`` (unique,
    non-empty strings) and ``rows`` and no other keys than those plus ``note`` / ``missing``; empty ``rows`` only
    with a ``missing`` reason; each row's keys are :data:`ID_KEYS`, :data:`META_KEYS` or the declared columns; every
    declared column is present in every row; values are numbers or None; ``eps`` is a string or None; no two rows
    share all identifiers.

    Args:
        data (dict): as :func:`load` returns.

    Raises:
        ValueError: the first violation, naming paper, table and row.
    """
    if not isinstance(data, dict) or set(data) != set(PAPERS):
        raise ValueError(f"top-level keys must be {list(PAPERS)}, got {list(data) if isinstance(data, dict) else data!r}")
    for paper, tabs in data.items():
        for tid, spec in tabs.items():
            where = f"{paper}.{tid}"
            if not isinstance(spec, dict) or not {"caption", "source", "columns", "rows"} <= set(spec):
                raise ValueError(f"{where}: needs caption, source, columns and rows")
            extra = set(spec) - _TABLE_KEYS
            if extra:
                raise ValueError(f"{where}: unknown keys {sorted(extra)}; allowed: {sorted(_TABLE_KEYS)}")
            cols = spec["columns"]
            if not cols or not all(isinstance(c, str) and c for c in cols) or len(set(cols)) != len(cols):
                raise ValueError(f"{where}: columns must be unique non-empty strings, got {cols!r}")
            if not spec["rows"] and not spec.get("missing"):
                raise ValueError(f"{where}: no rows and no 'missing' reason")
            seen = set()
            for i, row in enumerate(spec["rows"]):
                bad = set(row) - set(ID_KEYS) - set(META_KEYS) - set(cols)
                if bad:
                    raise ValueError(f"{where} row {i}: keys {sorted(bad)} are neither identifiers, annotations nor "
                                     f"declared columns {cols}")
                absent = [c for c in cols if c not in row]
                if absent:
                    raise ValueError(f"{where} row {i}: columns {absent} missing (use null for an empty cell)")
                for c in cols:
                    v = row[c]
                    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                        raise ValueError(f"{where} row {i}: {c!r} = {v!r} is not a number or null")
                if row.get("eps") is not None and not isinstance(row["eps"], str):
                    raise ValueError(f"{where} row {i}: eps must be a string like '8/255', got {row['eps']!r}")
                key = tuple(row.get(k) for k in ID_KEYS)
                if key in seen:
                    raise ValueError(f"{where} row {i}: duplicate identifiers {dict(zip(ID_KEYS, key))}")
                seen.add(key)
