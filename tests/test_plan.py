"""The paper profile's dry run (artlib.dryrun: caps, request log, relaxed checks, its data root and ImageNet
checkpoints) and the cost plan built from its requests (artlib.plan: step times, hours, cache, README block)."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from artlib import checks, data, dryrun, plan, reproduce, train
from fixtures_data import write_cifar10c, write_cifar_batches, write_flowers

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def dry(tmp_path, monkeypatch):
    log = tmp_path / "nb.requests.jsonl"
    monkeypatch.setenv(dryrun.ENV, str(log))
    return log


def test_caps_apply_only_in_a_dry_run(dry, monkeypatch):
    assert dryrun.active() and dryrun.iterations(50) == 2 and dryrun.iterations(1) == 1 and dryrun.iterations(None) is None
    cfg = train.config("paper", "cifar10", "art")
    cut = dryrun.training_config(cfg)
    assert (cut.max_steps, cut.batch_size, cut.train_subset, cut.test_subset, cut.steps) == (2, 2, 4, 2, 2)
    assert (cut.arch, cut.epochs, cut.eps, cut.beta) == (cfg.arch, cfg.epochs, cfg.eps, cfg.beta)   # paper settings
    (req,) = dryrun.read_requests(dry)
    assert req["kind"] == "train" and req["run_name"] == cfg.run_dir().name
    assert req["config"]["batch_size"] == 256 and req["config"]["arch"] == "wrn-28-10"
    monkeypatch.delenv(dryrun.ENV)
    assert not dryrun.active() and dryrun.iterations(50) == 50 and dryrun.training_config(cfg) is cfg


def test_cifar10c_blocks_stay_whole_and_its_images_per_block_are_capped(dry, tmp_path, monkeypatch):
    write_cifar10c(tmp_path / "root", n=6, corruptions=("fog",))
    ds = data.load_dataset("cifar10c", "test", root=tmp_path / "root", corruption="fog")
    assert len(ds) == 5 * 6               # corruption x severity x image layout untouched (indexed as blocks)
    assert dryrun.images(None) == dryrun.images(100) == dryrun.LIMITS["split"] and dryrun.images(1) == 1
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    from artlib import evaluate
    df = evaluate.corruption_accuracy(model, n=None, corruptions=["fog"], severities=[1, 5], root=tmp_path / "root")
    assert df.n.tolist() == [dryrun.LIMITS["split"]] * 2 and df.source.eq("CIFAR-10-C").all()
    monkeypatch.delenv(dryrun.ENV)
    assert dryrun.images(None) is None and dryrun.images(100) == 100


def test_dataset_splits_are_cut_to_a_stratified_few(dry, tmp_path):
    write_cifar_batches(tmp_path / "root", per_batch=4, n_test=6)
    ds = data.load_dataset("cifar10", "train", root=tmp_path / "root")
    counts = np.bincount(np.asarray(ds.targets))
    assert len(ds) == dryrun.LIMITS["split"] and (counts > 0).sum() > 1
    assert set(counts[counts > 0].tolist()) == {dryrun.LIMITS["per_class"]}   # per-class code sees 2 of a class


def test_a_failing_check_is_reported_not_raised_in_a_dry_run(dry, capsys, monkeypatch):
    c = checks.Checks()
    c.lower("PGD lowers accuracy", 0.5, 0.4)
    assert "dry-run, not checked: PGD lowers accuracy" in capsys.readouterr().out
    assert c.passed == ["PGD lowers accuracy (dry run: not checked)"]
    monkeypatch.delenv(dryrun.ENV)
    with pytest.raises(AssertionError, match="PGD lowers accuracy"):
        c.lower("PGD lowers accuracy", 0.5, 0.4)


def test_dry_run_data_root_adds_official_format_trees_and_leaves_the_real_root_alone(tmp_path):
    real = tmp_path / "real"
    write_flowers(real, per_class=2, splits=False)
    before = sorted(p.relative_to(real) for p in real.rglob("*"))
    overlay = dryrun.prepare_data(tmp_path / "out", real)
    assert sorted(p.relative_to(real) for p in real.rglob("*")) == before
    assert data.available("svhn", overlay) and data.available("flowers17-trimaps", overlay)
    assert len(data.load_dataset("svhn", "test", root=overlay)) == 8
    assert (overlay / "flowers17" / "jpg").is_symlink()


def test_dry_run_imagenet_checkpoints_are_converted_by_the_cli(tmp_path):
    from artlib import inequality
    folder = dryrun.prepare_robust_models(tmp_path, arch="resnet18", labels=("linf-8",))
    assert (folder / "resnet18_linf_eps8.0.weights.pt.json").is_file()
    model = inequality._imagenet_model("linf-8", "resnet18", folder)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_a_dry_run_needs_the_paper_profile():
    with pytest.raises(ValueError, match="profile must be 'paper'"):
        reproduce.run("smoke", dry_run=True, manifest=())


# ------------------------------------------------------------------------------------------------------ the plan
_TABLES = """
device cuda (NVIDIA H200), torch 2.11.0, 2 threads, wall clock, batch 128, 32x32, a = 3, amp=False, channels_last=False; load

| model | variant | s / step (min) | s / step (median) | x natural (min) | reps |
|---|---|---|---|---|---|
| resnet18 | natural | 0.010 | 0.010 | 1.0 | 3 |
| resnet18 | art_artlib | 0.300 | 0.320 | 30 | 3 |

device cuda (NVIDIA H200), torch 2.11.0, 2 threads, wall clock, batch 128, 32x32, a = 3, amp=True, channels_last=True; load

| model | variant | s / step (min) | s / step (median) | x natural (min) | reps |
|---|---|---|---|---|---|
| resnet18 | art_artlib | 9.0 | 9.0 | 1 | 3 |

device cpu, torch 2.11.0, 1 threads, CPU time, batch 32, 32x32, a = 3, amp=False, channels_last=False; load

| model | variant | s / step (min) | s / step (median) | x natural (min) | reps |
|---|---|---|---|---|---|
| resnet18 | natural | 5.0 | 5.0 | 1 | 3 |
"""


def test_step_times_read_the_fp32_h200_tables_only(tmp_path):
    md = tmp_path / "train.md"
    md.write_text(_TABLES)
    assert plan.step_times(md) == {("resnet18", "natural"): (0.010, 128, 32), ("resnet18", "art_artlib"): (0.320, 128, 32)}
    real = plan.step_times()
    assert ("wrn-28-10", "art_artlib") in real and ("resnet18", "natural") in real


def _requests(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_hours_cache_sharing_and_staleness(tmp_path):
    md = tmp_path / "train.md"
    md.write_text(_TABLES)
    times = plan.step_times(md)
    art = train.config("paper", "cifar10", "art", arch="resnet18", epochs=2)
    pgd = train.config("paper", "cifar10", "pgd", arch="resnet18", epochs=1)
    cub = train.config("paper", "cub200", "natural")
    stale = dataclasses.asdict(art)
    entries = [reproduce.Entry(f"{n}.ipynb") for n in ("a", "b", "c", "d")]
    req = lambda nb, cfg, name=None: {"notebook": nb, "config": dataclasses.asdict(cfg) if not isinstance(cfg, dict) else cfg,
                                      "run_name": name or cfg.run_dir().name}
    path = _requests(tmp_path / "req.jsonl", [req("a", art), req("a", pgd), req("a", cub), req("b", art),
                                               req("c", stale, "cifar10_art_resnet18_paper_seed0_00000000")])
    runs = tmp_path / "runs"
    (runs / pgd.run_dir().name).mkdir(parents=True)
    (runs / pgd.run_dir().name / "model.pt").write_bytes(b"x")
    t = plan.model_table(entries, path=path, runs=runs, times=times).set_index(["notebook", "method"], drop=False)
    steps = 2 * (50_000 // 256)
    row = t.loc[("a", "art")]
    assert row["status"] == "train" and row["steps"] == steps and row["basis"] == "measured"
    assert row["H200 hours"] == pytest.approx(0.320 * 256 / 128 * steps / 3600)
    assert t.loc[("a", "pgd")]["status"] == "cached" and t.loc[("a", "pgd")]["H200 hours"] == 0
    assert t.loc[("a", "pgd")]["basis"].startswith(f"PGD-{pgd.steps}")
    assert t.loc[("a", "natural")]["basis"] == "not measured" and np.isnan(t.loc[("a", "natural")]["H200 hours"])
    assert t.loc[("b", "art")]["status"] == "shared with a" and t.loc[("b", "art")]["H200 hours"] == 0
    status = dict(zip(t["notebook"], t["status"]))
    assert status["c"].startswith("not dry-run (stale") and status["d"].startswith("not dry-run")
    text = plan.render(t.reset_index(drop=True))
    assert f"| a | 2 | 1 | {row['H200 hours']:.1f} | 1 |" in text
    assert "| c | not dry-run |" in text and "| d | not dry-run |" in text
    assert f"**total** | **2** | | **{row['H200 hours']:.1f}** | **1** |" in text


def test_record_merges_the_dry_run_logs(tmp_path):
    out = tmp_path / "dry"
    out.mkdir()
    (out / "02_train_art.requests.jsonl").write_text(json.dumps({"kind": "train", "run_name": "x", "config": {"a": 1}}) + "\n")
    path = _requests(tmp_path / "req.jsonl", [{"notebook": "02_train_art", "run_name": "old", "config": {}},
                                               {"notebook": "03_art_table1_robustness", "run_name": "y", "config": {}}])
    plan.record(out, ["02_train_art.ipynb", "00_data_overview.ipynb"], path)
    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [r["notebook"] for r in rows] == ["00_data_overview", "02_train_art", "03_art_table1_robustness"]
    assert rows[1]["run_name"] == "x" and rows[0]["config"] is None


def test_readme_shows_the_recorded_plan():
    text = (ROOT / "README.md").read_text()
    block = text[text.index(plan.README_BEGIN) + len(plan.README_BEGIN):text.index(plan.README_END)]
    assert block.strip() == plan.render(plan.model_table()).strip(), \
        "README plan block is stale: python -c 'from artlib import plan; plan.update_readme()'"


def test_cli_plan_prints_the_table_and_refuses_other_profiles():
    run = lambda *a: subprocess.run([sys.executable, "-m", "artlib", "reproduce", *a], capture_output=True, text=True,
                                    cwd=ROOT)
    ok = run("--profile", "paper", "--plan", "--only", "02_")
    assert ok.returncode == 0 and "| notebook | models to train |" in ok.stdout and "| dataset | state |" in ok.stdout
    bad = run("--profile", "smoke", "--plan")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: --plan estimates the paper profile's cost: use --profile paper, not 'smoke'"]


def test_top_k_map_attack_and_gradshap_draws_are_capped(dry):
    from artlib import evaluate
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 8 * 8, 3))
    x, y = torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)
    y = evaluate.predict(model, x, None)                   # every image correctly classified: all attacked
    df = evaluate.attribution_robustness(model, x, y, map_method="gradshap", k=8, eps=0.5, step_size=0.1, steps=50)
    assert len(df) == 4 and df.step.max() <= dryrun.LIMITS["iterations"]     # 50 asked, 2 run


def test_search_grids_are_cut_to_their_ends(dry, monkeypatch):
    angles = torch.linspace(-30, 30, 31)
    assert dryrun.grid(angles).tolist() == [-30.0, 30.0] and dryrun.grid(angles[:1]).tolist() == [-30.0]
    monkeypatch.delenv(dryrun.ENV)
    assert dryrun.grid(angles) is angles


def test_record_times_merges_rows_and_marks_failures(tmp_path):
    path = tmp_path / "paper_check.md"
    plan.record_times({"05_art_fig4_generation.ipynb": 151.6, "07_art_table3_corruptions.ipynb": None}, path)
    plan.record_times({"07_art_table3_corruptions.ipynb": 155.7, "00_data_overview.ipynb": 10.1}, path)
    rows = [ln.split("|")[1:3] for ln in path.read_text().splitlines() if ln.startswith("| 0")]
    assert [(a.strip(), b.strip()) for a, b in rows] == [
        ("00_data_overview", "10.1"), ("05_art_fig4_generation", "151.6"), ("07_art_table3_corruptions", "155.7")]
    assert "3 of 3 notebooks passed; their wall times sum to 317.4 s." in path.read_text()
    plan.record_times({"05_art_fig4_generation.ipynb": None}, path)
    assert "| 05_art_fig4_generation | FAILED |" in path.read_text() and "2 of 3 notebooks passed" in path.read_text()


def test_spsa_draws_are_capped(dry, monkeypatch):
    from artlib import attacks
    seen = []

    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))

        def forward(self, x):
            seen.append(x.shape[0])
            return self.net(x)

    torch.manual_seed(0)
    model, x = Counting(), torch.rand(2, 3, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)                  # correctly classified: attacked
    seen.clear()
    attacks.spsa(model, x, y, eps=8 / 255, steps=100, n_samples=128, seed=0)
    capped = sum(seen)
    seen.clear()
    monkeypatch.delenv(dryrun.ENV)
    attacks.spsa(model, x, y, eps=8 / 255, steps=2, n_samples=128, seed=0)
    assert capped * 16 < sum(seen)          # 2 steps of 2 draws instead of 2 steps of 128 (+ the same checks)


def test_inductive_occlusion_budgets_are_capped(dry, monkeypatch):
    from artlib import attacks

    class Covered(torch.nn.Module):             # class 1 once over a third of the pixels are black
        def forward(self, x):
            black = (x == 0).all(1).flatten(1).float().mean(1)
            return torch.stack([torch.full_like(black, 1 / 3), black], 1)

    x, y = torch.rand(2, 3, 16, 16) * 0.9 + 0.1, torch.zeros(2, dtype=torch.long)
    attr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    run = lambda: attacks.inductive_occlusion(Covered(), x, y, attr, region=4, max_count=10, max_radius=4)
    assert not run().success.any()            # budgets up to (2 patches, radius 2) cover too little
    monkeypatch.delenv(dryrun.ENV)
    assert run().success.all()                # the asked (10, 4) covers a third
