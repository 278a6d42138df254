"""Packaging contract: pyproject and environment.yml agree, the README's two commands exist, the CLI answers."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from artlib import reproduce

ROOT = Path(__file__).resolve().parent.parent
# conda names the torch package `pytorch`; everything else keeps its PyPI name.
CONDA_TO_PIP = {"pytorch": "torch"}


def _split(req: str):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:(==|>=|<=|=)\s*([^\s;]+))?", req)
    name, op, ver = m.group(1).lower(), m.group(2), m.group(3)
    return name, ("==" if op in ("=", "==") else op), ver


def _pyproject_reqs():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    return {n: (op, v) for n, op, v in map(_split, reqs)}


def _conda_reqs():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, op, ver = _split(item)
            if name in ("python", "pip"):
                continue
            out[CONDA_TO_PIP.get(name, name)] = (op, ver)
    return env, out


def test_environment_yml_matches_pyproject_pins():
    env, conda = _conda_reqs()
    assert env["name"] == "artlib"
    assert {"pytorch", "conda-forge"} <= set(env["channels"])
    pip = _pyproject_reqs()
    assert set(conda) == set(pip), f"only in environment.yml: {set(conda) - set(pip)}; only in pyproject: {set(pip) - set(conda)}"
    for name, spec in pip.items():
        assert conda[name] == spec, f"{name}: pyproject {spec} vs environment.yml {conda[name]}"


def test_required_stack_is_pinned():
    pip = _pyproject_reqs()
    assert pip["torch"] == ("==", "2.14.1") and pip["torchvision"] == ("==", "0.29.1")
    for name in ("captum", "matplotlib", "seaborn", "papermill", "nbval", "ipywidgets", "tqdm", "pandas", "scipy"):
        assert name in pip, f"{name} missing from pyproject"


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    setup = [line.strip() for b in blocks[:2] for line in b.strip().splitlines()]
    assert setup == ["make reproduce", "make test"], setup
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), "CI must call the README's test command verbatim"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^reproduce:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "artlib", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_cli_help_lists_commands():
    res = _cli("--help")
    assert res.returncode == 0, res.stderr
    for cmd in ("data", "models", "train", "reproduce"):
        assert cmd in res.stdout


def test_cli_data_list_on_shared_data(shared_data):
    res = _cli("data", "list", "--root", str(shared_data))
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
    assert "found" in lines["cifar10"] and "20,000 images" in lines["cifar10"]
    assert "missing" in lines["svhn"] and "python -m artlib data download" not in lines["svhn"]


def test_cli_bad_dataset_is_one_clear_line(tmp_path):
    res = _cli("data", "download", "mnist-typo", "--root", str(tmp_path))
    assert res.returncode == 2
    assert "mnist-typo" in res.stderr and "cifar10" in res.stderr and "Traceback" not in res.stderr


def test_manifest_notebooks_exist_and_are_parameterised():
    import json
    for entry in reproduce.MANIFEST:
        nb = json.loads((reproduce.NOTEBOOKS / entry.notebook).read_text())
        tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
        assert "parameters" in tags, f"{entry.notebook} has no cell tagged 'parameters'"
        # a misspelt papermill -p fails inside the notebook too: params.mark() closes the parameters cell and the
        # next code cell (after papermill's injected one) starts with params.check_injected()
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        i = next(k for k, c in enumerate(code) if "parameters" in c["metadata"].get("tags", []))
        last = "".join(code[i]["source"]).rstrip().splitlines()[-1]
        assert last.startswith("from artlib import params; params.mark()"), f"{entry.notebook}: {last!r}"
        first = [ln for ln in "".join(code[i + 1]["source"]).splitlines() if not ln.startswith("#")][0]
        assert first.startswith("params.check_injected()"), f"{entry.notebook}: {first!r}"
    with pytest.raises(ValueError, match="no-such-notebook"):
        reproduce.select("no-such-notebook")


def test_reproduce_runs_a_notebook_with_a_relative_data_root(shared_data, tmp_path, monkeypatch):
    """The runner executes notebooks with cwd=notebooks/; a relative data root must still mean the caller's folder."""
    monkeypatch.chdir(shared_data.parent)
    monkeypatch.setenv("ARTLIB_DATA", shared_data.name)
    monkeypatch.setenv("ARTLIB_FIGURES", str(tmp_path / "figures"))
    assert reproduce.run(profile="smoke", only="00_data", out=tmp_path / "runs") == 0
    assert (tmp_path / "runs" / "00_data_overview.ipynb").exists()
    assert (tmp_path / "figures" / "data_overview_cifar10.png").exists()


def test_reproduce_skips_notebooks_whose_data_is_missing(tmp_path, monkeypatch, capsys):
    """A fresh machine with only the foolbox test images: training notebooks are skipped with the download command."""
    monkeypatch.setenv("ARTLIB_DATA", str(tmp_path))
    assert reproduce.run(profile="smoke", only="02_train", out=tmp_path / "runs") == 0
    out = capsys.readouterr().out
    assert "skip   02_train_art.ipynb: needs cifar10:train" in out and "python -m artlib data download cifar10" in out
    assert not (tmp_path / "runs" / "02_train_art.ipynb").exists()


def _tiny_notebook(path, body):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[
        new_code_cell('profile = "smoke"\nepochs = 1\nfrom artlib import params; params.mark()',
                      metadata={"tags": ["parameters"]}),
        new_code_cell("params.check_injected()\n" + body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_cli_notebook_reports_a_failure_in_one_line(tmp_path):
    """`python -m artlib notebook` is papermill with the parameters checked first and a failure in one line (the
    executed notebook keeps the whole traceback); plain papermill fails inside the kernel on a misspelt -p."""
    nb = _tiny_notebook(tmp_path / "nb.ipynb", "x = epochs + 1\nif x > 2:\n    raise ValueError(f'epochs too large: {x}')\n")
    out = tmp_path / "out.ipynb"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "artlib", "notebook", str(nb), str(out), "--no-progress", *args],
                              capture_output=True, text=True, cwd=tmp_path)

    r = cli("-p", "epochs", "1")
    assert r.returncode == 0 and f"ok {nb}" in r.stdout, r.stderr
    r = cli("-p", "epochs", "5")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    # cell 3: the execution count, papermill's injected-parameters cell is cell 2
    assert len(lines) == 1 and "failed at cell 3 line 4 (\"raise ValueError(f'epochs too large: {x}')\"): " \
        "ValueError: epochs too large: 6" in lines[0] and str(out) in lines[0], r.stderr
    r = cli("-p", "epoch", "5")                                    # misspelt: refused before anything runs
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown parameter 'epoch'" in r.stderr and "did you mean 'epochs'" in r.stderr
    assert "its parameters: epochs, profile" in r.stderr
    r = cli("-p", "epochs", "1", "-p", "epochs", "2")
    assert r.returncode == 2 and "parameter 'epochs' given more than once" in r.stderr
    # plain papermill: the injected `epoch = 5` is caught by params.check_injected() in the kernel (not only a warning)
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(nb), str(out), parameters={"epoch": 5}, progress_bar=False, kernel_name="python3")
    assert info.value.ename == "ValueError"
    assert "unknown parameter 'epoch' of this notebook (did you mean 'epochs'?); its parameters: epochs, profile" \
        in info.value.evalue
    assert reproduce.notebook_error(info.value).startswith("at cell ")


# Decimal numbers a notebook's prose may carry that are neither the papers' numbers nor section numbers: settings.
_PROSE_SETTINGS = {"09_art_adversarial_extras": {"0.01"}, "11_art_fig8_9_hyperparameters": {"0.75"},
                   "13_art_table2_cub_wsol": {"0.2", "0.1"}, "14_art_fig7_segmentation": {"0.2"},
                   "25_ineq_transfer_autoattack": {"1.20"}}
_SECTIONS = {f"{a}.{b}" for a in range(1, 7) for b in range(1, 6)}


def test_notebook_prose_quotes_no_result():
    """Markdown cells quote the papers' numbers (paper_numbers.yaml), section numbers and settings, never a result of
    a run: those are printed from the tables (a hand-typed result goes stale, as notebook 99's once did)."""
    import json

    from artlib import paper_numbers
    paper = {round(float(x), 4) for v in paper_numbers.to_long().value for x in (v, 100 * v, v / 100)}
    bad = []
    for nb in sorted(reproduce.NOTEBOOKS.glob("*.ipynb")):
        allowed = _PROSE_SETTINGS.get(nb.stem, set())
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            if cell["cell_type"] != "markdown":
                continue
            for m in re.finditer(r"(?<![\w./])(\d+\.\d+)(?![\w/])", "".join(cell["source"])):
                x = m.group(1)
                if x not in allowed and x not in _SECTIONS and round(float(x), 4) not in paper:
                    bad.append(f"{nb.name} cell {i}: {x}")
    assert not bad, bad


def test_license_is_an_spdx_expression_with_its_file():
    """PEP 639: ``project.license`` as a TOML table is deprecated in setuptools (a warning on every install, an error
    from February 2027); an SPDX string needs setuptools >= 77 in the build requirements."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert all((ROOT / f).is_file() for f in meta["project"]["license-files"])
    req = next(r for r in meta["build-system"]["requires"] if r.startswith("setuptools"))
    assert req.replace(" ", "") == "setuptools>=77"
