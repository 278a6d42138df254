"""artlib.explore: the explorers' callbacks on a small CNN and random images (no data needed), and the cached-run
listing / loading on a fake checkpoint cache."""
import matplotlib

matplotlib.use("Agg")
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from artlib import checkpoints, explore, train  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = train.config("smoke", "cifar10", "natural")
    model = train.build_model(cfg).eval()
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)                      # correctly classified by construction
    return cfg, model, x, y


def test_attribution_view_without_attack_is_identical(setup):
    _, model, x, y = setup
    v = explore.attribution_view(model, x[:1], y[:1], "saliency", eps=8 / 255, steps=0)
    assert torch.equal(v["attacked"], v["image"]) and v["linf"] == 0.0 and not v["success"]
    assert v["IN"] == pytest.approx(1.0) and v["K"] == pytest.approx(1.0)
    assert v["gini"] == pytest.approx(v["gini_attacked"]) and 0.0 <= v["gini"] <= 1.0
    assert v["map"].shape == (32, 32) and v["pred"] == v["pred_attacked"] == int(y[0])


def test_attribution_view_with_ifia(setup):
    _, model, x, y = setup
    v = explore.attribution_view(model, x[1:2], y[1:2], "ig", eps=8 / 255, steps=2, n_steps_ig=4, k=50)
    assert v["linf"] <= 8 / 255 + 1e-6 and 0.0 <= v["IN"] <= 1.0 and -1.0 <= v["K"] <= 1.0
    assert v["k"] == 50 and v["attacked"].min() >= 0 and v["attacked"].max() <= 1
    if v["success"]:
        assert v["pred_attacked"] == v["pred"]                # IFIA keeps the label
    fig = explore.plot_attribution_view(v, explore.class_names("cifar10"), title="t")
    assert len(fig.axes) == 3 and "IN" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="'lime'.*'ig'"):
        explore.attribution_view(model, x[:1], y[:1], "lime")
    with pytest.raises(ValueError, match="one image"):
        explore.attribution_view(model, x[:2], y[:2], "ig")


def test_occlusion_and_noise_views(setup):
    _, model, x, y = setup
    models = {"a": model, "b": model}
    attrs = {k: torch.rand_like(x) for k in models}
    v = explore.occlusion_view(models, x, y, attrs, index=2, count=3, radius=2, color="grey")
    t = v["table"]
    assert list(t["model"]) == ["a", "b"] and set(v["perturbed"]) == {"a", "b"}
    assert (t["n correct"] == 6).all() and t["error rate"].between(0, 1).all()
    assert (t["pixels changed"] >= 1).all() and (t["pixels changed"] <= 3 * 4 * 4).all()
    changed = v["perturbed"]["a"] != v["image"]
    assert torch.allclose(v["perturbed"]["a"][changed], torch.tensor(0.5))   # grey patches
    assert (t["changed"] == (t["pred"] != t["pred attacked"])).all()
    fig = explore.plot_perturbation_view(v)
    assert len(fig.axes) == 3

    n = explore.noise_view(models, x, y, attrs, index=0, threshold=20, kind="II", seed=3)
    assert (n["table"]["pixels changed"] <= 20).all()
    again = explore.noise_view(models, x, y, attrs, index=0, threshold=20, kind="II", seed=3)
    assert torch.equal(n["perturbed"]["a"], again["perturbed"]["a"])         # seeded
    with pytest.raises(ValueError, match="'pink'.*'black'"):
        explore.occlusion_view(models, x, y, attrs, color="pink")
    with pytest.raises(ValueError, match="'III'"):
        explore.noise_view(models, x, y, attrs, kind="III")
    with pytest.raises(ValueError, match="index 9"):
        explore.noise_view(models, x, y, attrs, index=9)


def test_cached_runs_and_load_run(setup, tmp_path):
    cfg, model, x, _ = setup
    run = tmp_path / "cifar10_natural_small-cnn_smoke_seed0_0000"
    checkpoints.save(run / "model.pt", {"model": model.state_dict()}, config=cfg.to_dict())
    cfg.save(run / "config.yaml")
    (tmp_path / "unfinished").mkdir()                       # no model.pt: not listed
    other = tmp_path / "gtsrb_run"
    checkpoints.save(other / "model.pt", {"model": model.state_dict()}, config=cfg.to_dict())
    cfg.replace(dataset="gtsrb").save(other / "config.yaml")
    assert list(explore.cached_runs(tmp_path, zoo_entries=False)) == [run.name, "gtsrb_run"]
    assert list(explore.cached_runs(tmp_path, dataset="cifar10", zoo_entries=False)) == [run.name]
    loaded, loaded_cfg = explore.load_run(run)
    assert loaded_cfg.dataset == "cifar10" and not loaded.training
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))
    assert explore.load_run(run)[0] is loaded               # kept in memory
    with pytest.raises(ValueError, match="not a finished run"):
        explore.load_run(tmp_path / "unfinished")


def test_controls_match_the_callbacks():
    c = explore.attribution_controls(["r1", "r2"], n_images=8, default_run="r2")
    assert set(c) == {"run", "method", "index", "eps", "steps"} and c["run"].value == "r2"
    assert c["index"].max == 7 and c["method"].options == explore.ATTRIBUTION_METHODS
    assert set(explore.occlusion_controls(8)) == {"index", "count", "radius", "color"}
    assert set(explore.noise_controls(8)) == {"index", "threshold", "kind"}
    with pytest.raises(ValueError, match="no cached run"):
        explore.attribution_controls([], 8)


def test_zoo_entries_are_explorable():
    from artlib import reproduce, zoo
    if not zoo.entries():
        pytest.skip("no trained zoo entry")
    e = zoo.entries()[0]
    runs = explore.cached_runs()
    assert runs[f"zoo:{e['name']}"] == Path(e["path"])
    model, cfg = explore.load_run(runs[f"zoo:{e['name']}"])
    assert not model.training and cfg.fingerprint() == e["config"].fingerprint()
    s = zoo.spec(e["name"])
    _, result = reproduce.get_model("smoke", s.dataset, s.method, seed=s.seed, **s.overrides)
    assert explore.run_key(result) == f"zoo:{e['name']}"
