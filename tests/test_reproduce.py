"""The papermill runner (artlib.reproduce.run) on tiny notebooks written here, and the checkpoint-cache lock.

Covers: dependency order by stage, a failing notebook reported with its cell while the rest run, up-to-date skips
(notebook source, parameters, artlib sources, checkpoints, outputs), --force, resume after a kill, --jobs, and two
processes training the same run folder at once.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from artlib import cache, checkpoints, reproduce
from artlib.reproduce import Entry

ROOT = Path(__file__).resolve().parent.parent


def _write_nb(path: Path, body: str, params: str = 'profile = "smoke"\nvalue = 1\n') -> Path:
    nb = new_notebook(cells=[new_markdown_cell("# fake"), new_code_cell(params, metadata={"tags": ["parameters"]}),
                             new_code_cell(textwrap.dedent(body))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


# writes <figures>/<name>.txt with the parameter value, and appends to a run log so the test sees every execution
_OK = """
import os, pathlib
fig = pathlib.Path(os.environ["ARTLIB_FIGURES"]); fig.mkdir(parents=True, exist_ok=True)
(fig / "{name}.txt").write_text(str(value))
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write("{name}\\n")
"""


@pytest.fixture()
def env(tmp_path, monkeypatch):
    nbs, out, figs = tmp_path / "nbs", tmp_path / "out", tmp_path / "figures"
    nbs.mkdir()
    monkeypatch.setenv("ARTLIB_FIGURES", str(figs))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "executions.log"))
    monkeypatch.setenv("ARTLIB_DATA", str(tmp_path / "data"))
    # artlib's real sources hash is tested on its own below; here it is pinned, so that an edit of the package
    # while the tests run does not make the fake notebooks out of date
    sha = reproduce.package_hash()
    monkeypatch.setattr(reproduce, "package_hash", lambda package=None: sha)

    def executions():
        log = tmp_path / "executions.log"
        return log.read_text().split() if log.exists() else []

    return dict(nbs=nbs, out=out, figs=figs, executions=executions, tmp=tmp_path)


def _run(env, manifest, **kw):
    return reproduce.run("smoke", out=env["out"], manifest=manifest, notebooks=env["nbs"], **kw)


def test_entry_and_select_validate_and_order_by_stage():
    with pytest.raises(ValueError, match="stage 'bogus'.*'train'"):
        Entry("x.ipynb", stage="bogus")
    manifest = (Entry("99_s.ipynb", stage="summary"), Entry("10_e.ipynb"), Entry("02_t.ipynb", stage="train"),
                Entry("11_e.ipynb"), Entry("00_d.ipynb", stage="data"))
    assert [e.notebook for e in reproduce.select(None, manifest)] == [
        "00_d.ipynb", "02_t.ipynb", "10_e.ipynb", "11_e.ipynb", "99_s.ipynb"]
    assert [e.notebook for e in reproduce.select("1?_e*", manifest)] == ["10_e.ipynb", "11_e.ipynb"]
    with pytest.raises(ValueError, match="zz.*choices"):
        reproduce.select("zz", manifest)
    with pytest.raises(ValueError, match="profile 'huge'"):
        reproduce.run("huge", manifest=manifest)
    # the package manifest: every stage known, the scorecard last
    assert reproduce.select(None)[-1].notebook == "99_scorecard.ipynb"


def test_misspelt_parameter_fails_before_the_notebook_runs(env, capsys):
    _write_nb(env["nbs"] / "b_eval.ipynb", _OK.format(name="b"))
    manifest = (Entry("b_eval.ipynb", params={"smoke": {"valeu": 2}}, outputs=("b.txt",), needs=()),)
    assert _run(env, manifest) == 1
    out = capsys.readouterr().out
    assert env["executions"]() == []                                   # nothing ran with the default value
    assert "FAILED b_eval.ipynb ValueError: unknown parameter 'valeu' of " in out and "(did you mean 'value'?)" in out


def test_failure_is_reported_with_cell_and_the_rest_run_then_up_to_date_skips(env, capsys):
    _write_nb(env["nbs"] / "b_eval.ipynb", _OK.format(name="b"))
    _write_nb(env["nbs"] / "c_bad.ipynb", "x = 1\nraise ValueError('broken on purpose')\n")
    _write_nb(env["nbs"] / "a_train.ipynb", _OK.format(name="a"))
    _write_nb(env["nbs"] / "z_summary.ipynb", _OK.format(name="z"))
    manifest = (Entry("z_summary.ipynb", outputs=("z.txt",), needs=(), stage="summary"),
                Entry("c_bad.ipynb", needs=()),
                Entry("b_eval.ipynb", outputs=("b.txt",), needs=()),
                Entry("a_train.ipynb", outputs=("a.txt",), needs=(), stage="train"))
    assert _run(env, manifest) == 1
    out = capsys.readouterr().out
    assert env["executions"]() == ["a", "b", "z"]                    # training first, summary last, bad one skipped
    assert "FAILED c_bad.ipynb at cell" in out and "ValueError: broken on purpose" in out
    assert "1 failed: ['c_bad.ipynb']" in out
    for name in ("a_train", "b_eval", "z_summary", "c_bad"):
        assert (env["out"] / f"{name}.ipynb").is_file()               # every executed notebook is saved
    assert not reproduce.state_path(manifest[1], env["out"]).exists()   # no state for the failure
    state = json.loads(reproduce.state_path(manifest[2], env["out"]).read_text())
    assert state["parameters"] == {"profile": "smoke"} and len(state["artlib_sha256"]) == 64

    # second run: the three good ones are up to date, only the failing one runs again
    assert _run(env, manifest) == 1
    out = capsys.readouterr().out
    assert env["executions"]() == ["a", "b", "z"], out
    assert out.count("fresh ") == 3 and "FAILED c_bad.ipynb" in out

    # --force reruns everything selected; --only narrows
    assert _run(env, manifest, force=True, only="b_") == 0
    assert env["executions"]() == ["a", "b", "z", "b"]


def test_changes_that_make_a_notebook_out_of_date(env, capsys):
    nb = _write_nb(env["nbs"] / "a.ipynb", _OK.format(name="a"))
    entry = Entry("a.ipynb", outputs=("a.txt",), needs=())
    assert _run(env, [entry]) == 0
    assert reproduce.up_to_date(entry, "smoke", env["out"], notebooks=env["nbs"]) == (True, "up to date")

    # parameters of the manifest entry
    other = Entry("a.ipynb", params={"smoke": {"value": 2}}, outputs=("a.txt",), needs=())
    assert reproduce.up_to_date(other, "smoke", env["out"], notebooks=env["nbs"]) == (False, "parameters changed")
    assert _run(env, [other]) == 0 and (env["figs"] / "a.txt").read_text() == "2"
    # artlib sources
    assert reproduce.up_to_date(other, "smoke", env["out"], notebooks=env["nbs"], artlib_sha="0" * 64) == (
        False, "artlib sources changed")
    # an output deleted
    (env["figs"] / "a.txt").unlink()
    assert reproduce.up_to_date(other, "smoke", env["out"], notebooks=env["nbs"])[1] == "output missing: a.txt"
    assert _run(env, [other]) == 0
    # the notebook source (outputs stored in it do not count: executing in place must not invalidate it)
    executed = nbformat.read(env["out"] / "a.ipynb", as_version=4)   # (with papermill's injected parameters)
    nbformat.write(executed, nb)
    assert [c.metadata.get("tags") for c in executed.cells].count(["injected-parameters"]) == 1
    assert reproduce.up_to_date(other, "smoke", env["out"], notebooks=env["nbs"])[0]
    _write_nb(nb, _OK.format(name="a") + "\nprint('changed')\n")
    assert reproduce.up_to_date(other, "smoke", env["out"], notebooks=env["nbs"]) == (False, "notebook changed")
    assert env["executions"]() == ["a", "a", "a"]


def test_a_notebook_reading_other_tables_is_out_of_date_when_they_change(env):
    _write_nb(env["nbs"] / "s.ipynb", _OK.format(name="s"))
    entry = Entry("s.ipynb", outputs=("s.txt",), needs=(), stage="summary", reads=("*.csv",))
    env["figs"].mkdir()
    (env["figs"] / "t.csv").write_text("a,paper a\n1,2\n")
    assert _run(env, [entry]) == 0
    assert reproduce.up_to_date(entry, "smoke", env["out"], notebooks=env["nbs"])[0]
    (env["figs"] / "other.txt").write_text("not a csv")                 # not read: still up to date
    assert reproduce.up_to_date(entry, "smoke", env["out"], notebooks=env["nbs"])[0]
    (env["figs"] / "t.csv").write_text("a,paper a\n1.5,2\n")          # a notebook it reads re-ran
    assert reproduce.up_to_date(entry, "smoke", env["out"], notebooks=env["nbs"]) == (False, "tables it reads changed")


def test_package_hash_follows_the_sources(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.yaml").write_text("k: 1\n")
    (pkg / "notes.md").write_text("ignored")
    h = reproduce.package_hash(pkg)
    assert len(h) == 64 and h == reproduce.package_hash(pkg)
    (pkg / "notes.md").write_text("still ignored")
    assert reproduce.package_hash(pkg) == h
    (pkg / "sub" / "b.yaml").write_text("k: 2\n")
    assert reproduce.package_hash(pkg) != h


def test_checkpoints_a_notebook_used_are_part_of_its_hash(env, capsys):
    run_dir = env["tmp"] / "runs" / "fake_run"
    checkpoints.save(run_dir / "model.pt", {"w": 1.0})
    _write_nb(env["nbs"] / "uses.ipynb", f"from artlib import cache\ncache.record_use({str(run_dir)!r})\n")
    entry = Entry("uses.ipynb", needs=())
    assert _run(env, [entry]) == 0
    state = json.loads(reproduce.state_path(entry, env["out"]).read_text())
    assert state["checkpoints"] == {str(run_dir.resolve()): cache.checkpoint_hash(run_dir)}
    assert reproduce.up_to_date(entry, "smoke", env["out"], notebooks=env["nbs"])[0]
    checkpoints.save(run_dir / "model.pt", {"w": 2.0})                  # retrained: other weights
    ok, why = reproduce.up_to_date(entry, "smoke", env["out"], notebooks=env["nbs"])
    assert not ok and why == "checkpoint fake_run changed or is missing"


def test_resume_after_kill_skips_finished_notebooks(env):
    """Kill the runner (and its kernel) while the second notebook runs: the next run skips the first and runs the
    second."""
    gate = env["tmp"] / "hold"
    gate.write_text("1")
    _write_nb(env["nbs"] / "a.ipynb", _OK.format(name="a"))
    _write_nb(env["nbs"] / "b.ipynb", _OK.format(name="b") +
              f"\nimport time, pathlib\nwhile pathlib.Path({str(gate)!r}).exists():\n    time.sleep(0.2)\n")
    script = textwrap.dedent(f"""
        from artlib import reproduce
        from artlib.reproduce import Entry
        m = [Entry("a.ipynb", outputs=("a.txt",), needs=()), Entry("b.ipynb", outputs=("b.txt",), needs=())]
        raise SystemExit(reproduce.run("smoke", out={str(env['out'])!r}, manifest=m, notebooks={str(env['nbs'])!r}))
    """)
    environ = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], env=environ, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and env["executions"]() != ["a", "b"] and proc.poll() is None:
            time.sleep(0.2)
        assert env["executions"]() == ["a", "b"], proc.stdout.read() if proc.poll() is not None else "timeout"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)                            # the runner and its kernel
        proc.wait(timeout=60)
    assert (env["out"] / "a.state.json").exists() and not (env["out"] / "b.state.json").exists()
    gate.unlink()
    m = [Entry("a.ipynb", outputs=("a.txt",), needs=()), Entry("b.ipynb", outputs=("b.txt",), needs=())]
    assert _run(env, m) == 0
    assert env["executions"]() == ["a", "b", "b"]
    assert (env["out"] / "b.state.json").exists()


def test_a_hung_cell_fails_its_notebook_after_the_cell_timeout(env, capsys):
    _write_nb(env["nbs"] / "hang.ipynb", "import time\ntime.sleep(120)\n")
    _write_nb(env["nbs"] / "after.ipynb", _OK.format(name="after"))
    m = [Entry("hang.ipynb", needs=()), Entry("after.ipynb", outputs=("after.txt",), needs=())]
    t0 = time.time()
    assert _run(env, m, cell_timeout=3) == 1
    assert time.time() - t0 < 100
    out = capsys.readouterr().out
    assert "FAILED hang.ipynb" in out and "timed out" in out.lower()
    assert env["executions"]() == ["after"]


def test_jobs_run_notebooks_in_worker_processes(env, capsys):
    for name in ("a", "b"):
        _write_nb(env["nbs"] / f"{name}.ipynb", _OK.format(name=name))
    m = [Entry("a.ipynb", outputs=("a.txt",), needs=()), Entry("b.ipynb", outputs=("b.txt",), needs=())]
    assert _run(env, m, jobs=2) == 0
    assert sorted(env["executions"]()) == ["a", "b"]
    assert (env["out"] / "a.state.json").exists() and (env["out"] / "b.state.json").exists()
    with pytest.raises(ValueError, match="jobs"):
        _run(env, m, jobs=0)


# ----------------------------------------------------------------------------------------------------------------------
# the checkpoint cache lock
# ----------------------------------------------------------------------------------------------------------------------
_HOLDER = """
import sys, time
from artlib import cache
with cache.run_lock(sys.argv[1], record=False):
    print("locked", flush=True)
    open(sys.argv[2], "a").write("A in\\n"); time.sleep(1.5); open(sys.argv[2], "a").write("A out\\n")
"""
_WAITER = """
import sys
from artlib import cache
with cache.run_lock(sys.argv[1], record=False):
    open(sys.argv[2], "a").write("B in\\n")
"""


def test_run_lock_excludes_a_second_process(tmp_path):
    run_dir, trace = tmp_path / "runs" / "r", tmp_path / "trace"
    environ = dict(os.environ, PYTHONPATH=str(ROOT))
    a = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run_dir), str(trace)], env=environ,
                         stdout=subprocess.PIPE, text=True)
    assert a.stdout.readline().strip() == "locked"
    b = subprocess.run([sys.executable, "-c", _WAITER, str(run_dir), str(trace)], env=environ, timeout=120)
    a.wait(timeout=120)
    assert a.returncode == 0 and b.returncode == 0
    assert trace.read_text().split("\n")[:3] == ["A in", "A out", "B in"]     # B waited for A to leave
    assert cache.lock_path(run_dir) == tmp_path / "runs" / "r.lock" and cache.lock_path(run_dir).exists()
    assert not run_dir.exists()


_TRAIN = """
import json, sys
from artlib import train
cfg = train.config("smoke", "cifar10", "natural", out_dir=sys.argv[1], train_subset=64, test_subset=10,
                   batch_size=16, epochs=2, eval_adv_steps=0, progress=False, checkpoint_every=1)
r = train.train(cfg)
print(json.dumps({"resumed_from": r.resumed_from, "steps": len(r.steps), "completed": r.completed}))
"""


@pytest.mark.shared_data
def test_two_processes_training_one_run_dir_train_it_once(shared_data, tmp_path):
    """Two processes ask for the same model at once: one trains, the other waits on the lock and loads the result;
    the checkpoint verifies against its sha256 sidecar."""
    environ = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", _TRAIN, str(tmp_path)], env=environ, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["completed"] and r["steps"] == 8 for r in results)
    assert sorted(r["resumed_from"] is None for r in results) == [False, True]   # exactly one trained
    assert [r["resumed_from"] for r in results if r["resumed_from"] is not None] == [8]  # the other only loaded
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    state, meta = checkpoints.load(run / "model.pt")                       # sha256 verified
    assert meta["sha256"] == cache.checkpoint_hash(run)


def test_readme_gallery_links_exist():
    """Every figure and notebook the README links to is in the checkout (the gallery shows committed PNGs)."""
    import re
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:figures|notebooks)/[^)\s]+)\)", readme)
    assert any(link.endswith(".png") for link in links)
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_gallery_shows_every_notebook_that_draws_a_figure():
    """The gallery keeps up with the manifest: each notebook with a PNG output has at least one PNG in the README."""
    readme = (ROOT / "README.md").read_text()
    absent = [e.notebook for e in reproduce.MANIFEST
              if any(o.endswith(".png") for o in e.outputs)
              and not any(f"figures/{o}" in readme for o in e.outputs if o.endswith(".png"))]
    assert not absent, f"README gallery lacks a figure of {absent}"


def test_cli_passes_force_jobs_only_and_out(monkeypatch, tmp_path):
    from artlib import __main__ as cli
    seen = {}
    monkeypatch.setattr(reproduce, "run", lambda **kw: seen.update(kw) or 0)
    assert cli.main(["reproduce", "--profile", "paper", "--only", "03_", "--jobs", "2", "--force",
                     "--out", str(tmp_path)]) == 0
    assert seen == {"profile": "paper", "only": "03_", "out": str(tmp_path), "jobs": 2, "force": True,
                    "cell_timeout": None, "dry_run": False}
    cli.main(["reproduce", "--profile", "paper", "--dry-run"])
    assert seen["dry_run"] is True and seen["profile"] == "paper"
    cli.main(["reproduce", "--cell-timeout", "60"])
    assert seen["force"] is False and seen["profile"] == "reference" and seen["jobs"] == 1 and seen["cell_timeout"] == 60
