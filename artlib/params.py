"""Notebook parameters checked against what the notebook declares, so that a misspelt papermill ``-p`` fails.

papermill injects ``-p NAME VALUE`` as an assignment after the cell tagged ``parameters`` and only *warns* when
``NAME`` is not one of that cell's names: ``papermill 02_train_art.ipynb out.ipynb -p epoch 1`` trains with the default
``epochs`` and says so in one log line. These helpers turn that into one clear ``ValueError`` naming the unknown
parameter, the closest declared one and all of them. They depend on nothing but the standard library (no papermill,
no :mod:`artlib.reproduce`), so a runner and a notebook can both call them.

From a runner, before executing (``given`` is what would be passed as papermill's ``parameters``)::

    >>> from artlib import params
    >>> params.check_parameters({"epoch": 1}, params.declared_parameters("notebooks/02_train_art.ipynb"))
    ValueError: unknown parameter 'epoch' of notebooks/02_train_art.ipynb (did you mean 'epochs'?); its parameters: ...

From inside a notebook: call :func:`mark` as the last line of the ``parameters`` cell and :func:`check_injected` at
the top of the next cell you write (papermill puts its ``injected-parameters`` cell in between)::

    # cell tagged "parameters"
    profile = "smoke"
    epochs = None
    from artlib import params; params.mark()

    # next cell
    params.check_injected()          # ValueError for `-p epoch 1`: 'epoch' is not a parameter (did you mean 'epochs'?)
"""
from __future__ import annotations

import ast
import difflib
import json
import sys
import types
from pathlib import Path
from typing import Iterable, Mapping, Optional

__all__ = ["check_parameters", "declared_parameters", "mark", "check_injected"]

_MARKS: dict = {}  # id(namespace) -> (names present at mark(), names declared by the parameters cell)


def check_parameters(given: Mapping, allowed: Iterable[str], where: str = "the notebook") -> dict:
    """Return ``dict(given)`` when every key is in ``allowed``; else raise one ``ValueError`` naming the first unknown
    key, the closest allowed name and every allowed name.

    Args:
        given: parameter name -> value (papermill's ``parameters``, a ``-p`` list as a dict).
        allowed: the declared names, e.g. :func:`declared_parameters` of the notebook.
        where: what the parameters belong to, for the message.

    Example::

        >>> check_parameters({"epochs": 1}, ["profile", "epochs"])
        {'epochs': 1}
    """
    allowed = sorted(set(allowed))
    if not isinstance(given, Mapping):
        raise ValueError(f"parameters must be a mapping of name -> value, got {type(given).__name__}")
    for name in given:
        if not isinstance(name, str) or name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown parameter {name!r} of {where}{hint}; its parameters: "
                             f"{', '.join(allowed) or 'none'}")
    return dict(given)


def declared_parameters(notebook: str | Path) -> dict:
    """The names assigned in a notebook's cell tagged ``parameters`` -> the source text of their default value.

    Raises:
        ValueError: the file is not a notebook, or has no cell tagged ``parameters``.
    """
    path = Path(notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a readable Jupyter notebook ({type(exc).__name__}: {exc})") from None
    for cell in cells:
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata", {}).get("tags") or []):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]  # IPython magics
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError as exc:
                raise ValueError(f"the parameters cell of {path} is not valid Python: {exc}") from None
            out = {}
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, ast.AnnAssign) else []
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            value = getattr(node, "value", None)
                            out[n.id] = ast.unparse(value) if value is not None else ""
            return out
    raise ValueError(f"{path} has no cell tagged 'parameters'")


def _public(namespace: Mapping) -> set:
    return {k for k in namespace if not k.startswith("_")}


def _values(namespace: Mapping, names: Iterable[str]) -> list:
    """The names that hold plain values (not modules, functions or classes): what a parameters cell declares."""
    return sorted(k for k in names if not isinstance(namespace.get(k), (types.ModuleType, types.FunctionType,
                                                                         types.BuiltinFunctionType, type)))


def mark(namespace: Optional[dict] = None) -> None:
    """Record the names of ``namespace`` (default: the caller's globals, i.e. the notebook's) at the end of the
    ``parameters`` cell, for :func:`check_injected`."""
    ns = namespace if namespace is not None else sys._getframe(1).f_globals
    names = _public(ns)
    shell = ns.get("get_ipython")
    hidden = set(getattr(shell(), "user_ns_hidden", ()) if callable(shell) else ())  # In, Out, exit, quit, ...
    _MARKS[id(ns)] = (names, _values(ns, names - hidden))


def check_injected(namespace: Optional[dict] = None) -> dict:
    """Raise one ``ValueError`` when a name appeared in ``namespace`` (default: the caller's globals) since
    :func:`mark`: papermill's ``injected-parameters`` cell assigned a parameter the ``parameters`` cell does not
    declare (``-p epoch 1`` for ``epochs``). Returns ``{}`` when nothing unknown was injected.

    Raises:
        ValueError: an unknown parameter (with the closest declared name), or :func:`mark` was never called.
    """
    ns = namespace if namespace is not None else sys._getframe(1).f_globals
    if id(ns) not in _MARKS:
        raise ValueError("artlib.params.check_injected() needs artlib.params.mark() as the last line of the "
                         "notebook's parameters cell")
    before, declared = _MARKS[id(ns)]
    new = sorted(_public(ns) - before)
    return check_parameters({k: ns[k] for k in new}, declared, where="this notebook")
