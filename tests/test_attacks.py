"""artlib.attacks: eps-balls and [0, 1], PGD on a briefly trained small-cnn on real CIFAR-10 images, IFIA (label kept,
top-k intersection lowered, batched == per image), the targeted attribution attack, SPSA, the spatial grid, transfer,
inductive noise / occlusion masks and budgets, model-state hygiene and bad input."""
import math
import os
from functools import partial

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from artlib import attacks, attribution, models

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

EPS = 8 / 255
TOL = 1e-6
CLASSES = (0, 1, 6, 7)   # CIFAR-10 airplane, automobile, frog, horse


# ----------------------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------------------
def _skip_or_fail(reason: str):
    if os.environ.get("ARTLIB_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cifar():
    """Real CIFAR-10 images (JPEG subset) of four classes, airplane / automobile / frog / horse (labels 0-3): the
    first 300 train and 25 test images of each (a four-class task trains well above chance in seconds on a CPU)."""
    from artlib import data

    def pick(split, n):
        try:
            ds = data.load_dataset("cifar10", split)          # root: $ARTLIB_DATA, else ./data
        except data.DatasetNotFoundError as e:
            _skip_or_fail(f"real CIFAR-10 images not found ({e}); set ARTLIB_DATA=../shared/data")
        if len(ds) < 10 * n:
            _skip_or_fail(f"CIFAR-10 {split} under the data root has {len(ds)} images ({ds.source}); need "
                          f"{n} per class; set ARTLIB_DATA=../shared/data")
        idx = [i for c in CLASSES for i in [j for j, t in enumerate(ds.targets) if t == c][:n]]
        return torch.stack([ds[i][0] for i in idx]), torch.tensor([CLASSES.index(ds.targets[i]) for i in idx])

    return pick("train", 300), pick("test", 25)


@pytest.fixture(scope="module")
def trained_cnn(cifar):
    """small-cnn (4 outputs, CIFAR-10 normalisation) naturally trained for 80 Adam steps of 32 real images: about
    65 % test accuracy (chance 25 %) and, like any naturally trained CNN, not robust to eps = 8/255."""
    from artlib import data
    (X, Y), _ = cifar
    info = data.DATASETS["cifar10"]
    torch.manual_seed(0)
    model = models.build_model("small-cnn", len(CLASSES), mean=info.mean, std=info.std)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        idx = torch.randint(0, len(X), (32,), generator=g)
        loss = F.cross_entropy(model(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    """An untrained small-cnn and 16x16 images (fast; enough for contracts and determinism)."""
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)).eval()
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _in_ball(x_adv, x, eps, norm="linf"):
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    d = (x_adv - x).flatten(1)
    n = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert bool((n <= eps + TOL).all()), f"{norm} distance {n.max().item()} > eps {eps}"


class _PixelIsBlack(nn.Module):
    """Class 1 iff one of the pixels ``(py, px)`` is black in every channel, else class 0 (an occlusion can flip it)."""

    def __init__(self, *pixels):
        super().__init__()
        self.pixels = pixels

    def forward(self, x):
        black = torch.stack([x[:, :, py, px].amax(1) < 1e-6 for py, px in self.pixels]).any(0).to(x.dtype)
        return torch.stack([1 - black, black], 1)


class _Constant(nn.Module):
    """Always predicts class 0 (no budget ever succeeds: the attack ends at its largest budget)."""

    def forward(self, x):
        return torch.stack([torch.ones(x.shape[0]), torch.zeros(x.shape[0])], 1).to(x.dtype)


# ----------------------------------------------------------------------------------------------------------------------
# PGD
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm,eps,step", [("linf", EPS, 2 / 255), ("l2", 1.0, 0.25)])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_respects_ball_and_range(tiny, norm, eps, step, random_start):
    model, x, y = tiny
    x_adv = attacks.pgd(model, x, y, eps, step, 5, norm=norm, random_start=random_start, seed=0)
    _in_ball(x_adv, x, eps, norm)
    assert not x_adv.requires_grad and (x_adv != x).any()
    again = attacks.pgd(model, x, y, eps, step, 5, norm=norm, random_start=random_start, seed=0)
    assert torch.equal(x_adv, again)                       # deterministic for a seed
    # steps=0 with a random start returns the start, inside the ball
    _in_ball(attacks.pgd(model, x, y, eps, step, 0, norm=norm, seed=1), x, eps, norm)


def test_pgd_lowers_accuracy_of_trained_cnn_on_real_cifar(trained_cnn, cifar):
    _, (Xt, Yt) = cifar
    x, y = Xt, Yt
    with torch.no_grad():
        clean = (trained_cnn(x).argmax(1) == y).float().mean().item()
    x_adv = attacks.pgd(trained_cnn, x, y, EPS, 2 / 255, 10, seed=0)
    _in_ball(x_adv, x, EPS)
    with torch.no_grad():
        adv = (trained_cnn(x_adv).argmax(1) == y).float().mean().item()
    assert clean >= 0.5, f"the briefly trained small-cnn should beat chance (0.25) clearly, got {clean:.2f}"
    assert adv <= 0.5 * clean, (clean, adv)
    x_l2 = attacks.pgd(trained_cnn, x, y, 1.0, 0.25, 10, norm="l2", seed=0)
    _in_ball(x_l2, x, 1.0, "l2")
    with torch.no_grad():
        assert (trained_cnn(x_l2).argmax(1) == y).float().mean().item() < clean


def test_pgd_targeted_and_custom_loss(tiny):
    model, x, _ = tiny
    target = torch.full((x.shape[0],), 3)
    x_t = attacks.pgd(model, x, target, 0.3, 0.04, 10, targeted=True, seed=0)
    _in_ball(x_t, x, 0.3)
    with torch.no_grad():
        before = F.log_softmax(model(x), 1)[:, 3]
        after = F.log_softmax(model(x_t), 1)[:, 3]
    assert bool((after > before).all())
    per_sample = attacks.pgd(model, x, target, 0.3, 0.02, 3, targeted=True, random_start=False,
                             loss_fn=lambda z, t: F.cross_entropy(z, t, reduction="none"))
    summed = attacks.pgd(model, x, target, 0.3, 0.02, 3, targeted=True, random_start=False)
    assert torch.equal(per_sample, summed)


# ----------------------------------------------------------------------------------------------------------------------
# IFIA
# ----------------------------------------------------------------------------------------------------------------------
def test_ifia_keeps_label_and_lowers_topk_on_trained_cnn(trained_cnn, cifar):
    _, (Xt, Yt) = cifar
    with torch.no_grad():
        ok = (trained_cnn(Xt).argmax(1) == Yt).nonzero().flatten()[:4]
    x, y = Xt[ok], Yt[ok]
    res = attacks.ifia(trained_cnn, x, y, k=100, eps=EPS, step_size=2 / 255, steps=4, n_steps_ig=16)
    _in_ball(res.x_adv, x, EPS)
    with torch.no_grad():
        assert torch.equal(trained_cnn(res.x_adv).argmax(1), y)       # never changes the predicted label
    assert res.success.all() and ((res.step >= 1) & (res.step <= 4)).all()
    assert res.intersection.max() < 1 and res.intersection.mean() < 0.85, res.intersection
    assert res.kendall.mean() < 0.95 and res.intersection.shape == res.kendall.shape == (4,)
    # the reported intersection is the one of the returned images, measured independently
    m0 = attribution.to_saliency_map(attribution.attribute(trained_cnn, x, y, "ig", n_steps=16,
                                                           ig_method="riemann_right"))
    m1 = attribution.to_saliency_map(attribution.attribute(trained_cnn, res.x_adv, y, "ig", n_steps=16,
                                                           ig_method="riemann_right"))
    from artlib import metrics
    torch.testing.assert_close(res.intersection, metrics.topk_intersection(m0, m1, 100))


@pytest.mark.parametrize("setting", ["paper", "official"])
def test_ifia_batched_equals_per_image(tiny, setting):
    model, x, y = tiny
    kw = dict(k=20, eps=EPS, step_size=1 / 255, steps=3, n_steps_ig=8, setting=setting, random_start=True)
    seeds = [11, 12, 13, 14, 15]
    full = attacks.ifia(model, x, y, seed=seeds, batch_size=len(x), **kw)        # one pass over the batch
    chunked = attacks.ifia(model, x, y, seed=seeds, batch_size=2, **kw)
    single = [attacks.ifia(model, x[i:i + 1], y[i:i + 1], seed=[seeds[i]], **kw) for i in range(len(x))]
    for name in attacks.IFIAResult._fields:
        a = getattr(full, name)
        assert torch.equal(a, getattr(chunked, name)), name
        assert torch.equal(a, torch.cat([getattr(r, name) for r in single])), name
    _in_ball(full.x_adv, x, EPS)
    with torch.no_grad():
        pred = model(full.x_adv).argmax(1)
    assert torch.equal(pred[full.success], y[full.success])
    # an int seed gives every sample the same generator: identical to per-image calls with that seed too
    one = attacks.ifia(model, x[:2], y[:2], seed=7, batch_size=2, **kw)
    assert torch.equal(one.x_adv[1:], attacks.ifia(model, x[1:2], y[1:2], seed=7, **kw).x_adv)


def test_ifia_official_setting_contract(tiny):
    model, x, y = tiny
    res = attacks.ifia(model, x, y, k=20, eps=EPS, step_size=1 / 255, steps=3, n_steps_ig=8, setting="official",
                       seed=0, eval_k=10)
    _in_ball(res.x_adv, x, EPS)
    assert ((res.step >= -1) & (res.step <= 2)).all()                 # iterate measured before each update
    assert torch.equal(res.success, res.step >= 0)
    assert ((res.intersection >= 0) & (res.intersection <= 1)).all()
    # no steps: paper returns x itself with intersection 1 and no success
    res0 = attacks.ifia(model, x, y, k=20, eps=EPS, step_size=1 / 255, steps=0, n_steps_ig=8)
    assert torch.equal(res0.x_adv, x) and (res0.intersection == 1).all() and not res0.success.any()


def test_auto_batch_size_sizes_from_activations_and_memory(tiny):
    model, x, _ = tiny
    assert attacks.auto_batch_size("cpu", 100, model, x) == 1
    assert attacks.auto_batch_size("cuda", 100) == 64          # no model: the fixed GPU default
    # leaf-module outputs of small-cnn on one 16x16 image: Normalize 3*256, conv1 / relu1 32*256, pool1 32*64,
    # conv2 / relu2 64*64, pool2 64*16, conv3 / relu3 128*16, avgpool / flatten 128, fc 10 floats
    floats = 3 * 256 + 2 * 32 * 256 + 32 * 64 + 2 * 64 * 64 + 64 * 16 + 2 * 128 * 16 + 2 * 128 + 10
    assert attacks._activation_bytes(model, x[:1]) == 4 * floats
    assert all(h == {} for h in (m._forward_hooks for m in model.modules()))       # hooks removed
    per = 1000.0
    free = int(100 * per / attacks.MEMORY_FRACTION) + 1                           # room for 100 images
    assert attacks._fit_batch(free, per) == 100
    assert attacks._fit_batch(free, per, n_images=300) == 100
    assert attacks._fit_batch(free, per, n_images=250) == 84                       # 84 + 84 + 82, not 100 + 100 + 50
    assert attacks._fit_batch(free, per, n_images=60) == 60
    assert attacks._fit_batch(10**12, per) == attacks.MAX_AUTO_BATCH
    assert attacks._fit_batch(10**12, per, n_images=300) == 150                    # 2 x 150, not 256 + 44
    assert attacks._fit_batch(0, per) == 1


def test_auto_batch_halves_a_pass_that_runs_out_of_memory(tiny, monkeypatch):
    """An automatic pass size that still runs out of memory is halved and retried; results do not change; an explicit
    batch_size is not second-guessed."""
    model, x, y = tiny
    kw = dict(k=20, eps=EPS, step_size=1 / 255, steps=2, n_steps_ig=8)
    ref = attacks.ifia(model, x, y, batch_size=1, **kw)
    chunk, sizes = attacks._ifia_chunk, []

    def limited(model, x, *a, **k):
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return chunk(model, x, *a, **k)
    monkeypatch.setattr(attacks, "_ifia_chunk", limited)
    monkeypatch.setattr(attacks, "auto_batch_size", lambda *a, **k: 5)
    res = attacks.ifia(model, x, y, **kw)
    assert sizes == [5, 2, 2, 1]          # 5 fails, then passes of 2 images (the last one holds what is left)
    for name in attacks.IFIAResult._fields:
        assert torch.equal(getattr(res, name), getattr(ref, name)), name
    with pytest.raises(torch.OutOfMemoryError):
        attacks.ifia(model, x, y, batch_size=4, **kw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_batch_size_cuda_fits_free_memory(tiny):
    model, x, _ = tiny
    model, x = model.cuda(), x.cuda()
    b = attacks.auto_batch_size(x.device, 100, model, x)
    free, _ = torch.cuda.mem_get_info()
    assert 1 <= b <= len(x)
    per = attacks.ACTIVATION_FACTOR * 100 * attacks._activation_bytes(model, x[:1])
    assert abs(b - attacks._fit_batch(free, per, len(x))) <= 1     # free memory may move between the two calls


def test_ifia_bad_inputs(tiny):
    model, x, y = tiny
    kw = dict(eps=EPS, step_size=1 / 255, steps=1)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 256\]"):
        attacks.ifia(model, x, y, k=257, **kw)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attacks.ifia(model, x, y, k=10, eps=-0.1, step_size=1 / 255, steps=1)
    with pytest.raises(ValueError, match="batch size 5"):
        attacks.ifia(model, x, y[:3], k=10, **kw)
    with pytest.raises(ValueError, match="setting"):
        attacks.ifia(model, x, y, k=10, setting="released", **kw)
    with pytest.raises(ValueError, match="measure"):
        attacks.ifia(model, x, y, k=10, measure="spearman", **kw)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attacks.ifia(model, x * 2 - 0.5, y, k=10, **kw)
    with pytest.raises(ValueError, match="one per sample"):
        attacks.ifia(model, x, y, k=10, seed=[1, 2], random_start=True, **kw)


# ----------------------------------------------------------------------------------------------------------------------
# targeted attribution attack, SPSA, spatial, transfer
# ----------------------------------------------------------------------------------------------------------------------
def test_targeted_attribution_attack_moves_map_towards_target(tiny):
    model, x, y = tiny
    perm = torch.tensor([1, 2, 3, 4, 0])
    target = attribution.to_saliency_map(attribution.attribute(model, x[perm], y[perm], "ig", n_steps=8))
    res = attacks.targeted_attribution_attack(model, x, target, EPS, 1 / 255, 3, n_steps_ig=8)
    _in_ball(res.x_adv, x, EPS)
    ig = lambda z: attribution.attribute(model, z, y, "ig", n_steps=8, ig_method="riemann_right")  # noqa: E731
    unit = lambda a: (a.abs().sum(1).flatten(1) / a.abs().sum((1, 2, 3)).view(-1, 1))  # noqa: E731
    t = target.flatten(1) / target.flatten(1).sum(1, keepdim=True)
    d_clean = ((unit(ig(x)) - t) ** 2).sum(1)
    torch.testing.assert_close(res.distance, ((unit(ig(res.x_adv)) - t) ** 2).sum(1))
    assert (res.distance <= d_clean).all() and (res.distance[res.success] < d_clean[res.success]).all()
    assert res.success.any()
    with torch.no_grad():
        assert torch.equal(model(res.x_adv).argmax(1), y)
    with pytest.raises(ValueError, match="target_map"):
        attacks.targeted_attribution_attack(model, x, target[:, :8], EPS, 1 / 255, 1)


def test_spsa_respects_ball_and_finds_adversarials():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 0.8 + 0.1
    with torch.no_grad():
        y = model(x).argmax(1)
    x_adv = attacks.spsa(model, x, y, 0.1, 20, lr=0.02, n_samples=16, seed=0, max_batch=64)
    _in_ball(x_adv, x, 0.1)
    with torch.no_grad():
        fooled = (model(x_adv).argmax(1) != y).float().mean().item()
        margin = lambda z: attacks._margin(model(z), y, False)  # noqa: E731
        assert (margin(x_adv) < margin(x)).all()
    assert fooled >= 0.5
    assert torch.equal(x_adv, attacks.spsa(model, x, y, 0.1, 20, lr=0.02, n_samples=16, seed=0, max_batch=64))


def test_spatial_attack_geometry_and_worst_case():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    rot = attacks._rotate_translate
    zero = torch.zeros(2)
    torch.testing.assert_close(rot(x, zero, zero, zero), x)
    torch.testing.assert_close(rot(x, torch.full((2,), 90.0), zero, zero), torch.rot90(x, -1, (2, 3)),
                               atol=1e-5, rtol=0)                                       # clockwise on screen
    shifted = rot(x, zero, torch.full((2,), 2.0), torch.full((2,), 1.0))               # 2 px right, 1 px down
    torch.testing.assert_close(shifted[:, :, 1:, 2:], x[:, :, :-1, :-2], atol=1e-5, rtol=0)
    assert (shifted[:, :, :1, :] == 0).all() and (shifted[:, :, :, :2] == 0).all()
    # a model that is wrong only when the top-left pixel is black: found by translating right / down
    model = _PixelIsBlack((0, 0))
    xs = torch.full((3, 3, 8, 8), 0.7)
    y = torch.zeros(3, dtype=torch.long)
    res = attacks.spatial_attack(model, xs, y, rotations=[-10, 0, 10], translations=[-1, 0, 1])
    assert res.success.all() and ((res.tx > 0) | (res.ty > 0) | (res.angle != 0)).all()
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    assert set(res.angle.tolist()) <= {-10.0, 0.0, 10.0} and set(res.tx.tolist()) <= {-1.0, 0.0, 1.0}
    none = attacks.spatial_attack(_Constant(), xs, y, rotations=[0.0], translations=[0.0])
    assert not none.success.any() and torch.allclose(none.x_adv, xs)
    with pytest.raises(ValueError, match="rotations"):
        attacks.spatial_attack(model, xs, y, rotations=[])


def test_transfer_accuracy(tiny):
    model, x, y = tiny
    assert attacks.transfer_accuracy(model, model, x, y, lambda m, a, b: a) == 1.0   # clean: y = predictions
    pgd = partial(attacks.pgd, eps=0.3, step_size=0.05, steps=10, seed=0)
    with torch.no_grad():
        expected = (model(pgd(model, x, y)).argmax(1) == y).float().mean().item()
    assert attacks.transfer_accuracy(model, model, x, y, pgd, batch_size=5) == pytest.approx(expected)
    ifia = partial(attacks.ifia, k=10, eps=EPS, step_size=1 / 255, steps=1, n_steps_ig=4)
    assert attacks.transfer_accuracy(model, model, x, y, ifia) == 1.0                 # IFIA keeps labels


# ----------------------------------------------------------------------------------------------------------------------
# inductive noise / occlusion (Inequality paper)
# ----------------------------------------------------------------------------------------------------------------------
def _images(B=2, C=3, H=8, W=8, seed=0):
    return torch.rand(B, C, H, W, generator=torch.Generator().manual_seed(seed)) * 0.6 + 0.2


def test_inductive_noise_changes_only_the_top_entries():
    x = _images()
    attr = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(2, dtype=torch.long)
    for kind in ("I", "II"):
        res = attacks.inductive_noise(_Constant(), x, y, attr, 10, kind=kind, std=0.05, mean=0.5, seed=0)
        top = torch.zeros(2, 3 * 8 * 8, dtype=torch.bool).scatter_(1, attr.flatten(1).topk(10).indices, True)
        assert torch.equal((res.x_adv != x).flatten(1), top), kind          # exactly the 10 top signed entries
        assert not res.success.any() and (res.threshold == 0).all()
        assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    # noise II writes mean + std * N(0, 1): with std 0 the entries become exactly the mean
    res = attacks.inductive_noise(_Constant(), x, y, attr, 10, kind="II", std=0.0, mean=0.25)
    changed = res.x_adv != x
    assert (res.x_adv[changed] == 0.25).all() and changed.flatten(1).sum(1).tolist() == [10, 10]
    # a pixel map perturbs all channels of the top pixels; random picks the same number of random entries
    amap = attr.abs().sum(1)
    res = attacks.inductive_noise(_Constant(), x, y, amap, 5, std=0.05, seed=0)
    top_px = torch.zeros(2, 64, dtype=torch.bool).scatter_(1, amap.flatten(1).topk(5).indices, True).view(2, 1, 8, 8)
    assert torch.equal(res.x_adv != x, top_px.expand(-1, 3, -1, -1))
    res = attacks.inductive_noise(_Constant(), x, y, attr, 10, kind="random", std=0.05, seed=0)
    assert (res.x_adv != x).flatten(1).sum(1).tolist() == [10, 10]
    # released setting: uniform noise in the image's own range
    res = attacks.inductive_noise(_Constant(), x, y, attr, 10, kind="II", setting="released", seed=0)
    lo, hi = x.flatten(1).amin(1), x.flatten(1).amax(1)
    assert ((res.x_adv.flatten(1) >= lo[:, None]) & (res.x_adv.flatten(1) <= hi[:, None])).all()


def test_inductive_noise_budgets_and_success():
    x = _images(B=2, C=1)
    # importance decreasing along the flattened image; the model flips once pixel (0, 5) = entry 5 is black
    attr = -torch.arange(64, dtype=torch.float32).view(1, 1, 8, 8).expand(2, 1, 8, 8).clone()
    attr[1] = attr[1].flip(-1)                                  # sample 1: entry 5 sits at rank 2 (of row 0 flipped)
    model, y = _PixelIsBlack((0, 5)), torch.zeros(2, dtype=torch.long)
    res = attacks.inductive_noise(model, x, y, attr, [1, 3, 6, 64], kind="II", std=0.0, mean=0.0)
    assert res.success.all() and res.threshold.tolist() == [6, 3]
    assert (res.x_adv != x).flatten(1).sum(1).tolist() == [6, 3]
    with pytest.raises(ValueError, match="threshold"):
        attacks.inductive_noise(model, x, y, attr, 65)
    with pytest.raises(ValueError, match="kind"):
        attacks.inductive_noise(model, x, y, attr, 5, kind="III")
    with pytest.raises(ValueError, match="attr"):
        attacks.inductive_noise(model, x, y, attr[:, :, :4], 5)


def test_inductive_occlusion_masks_only_top_regions_up_to_budget():
    x = _images(B=2, H=16, W=16)
    y = torch.zeros(2, dtype=torch.long)
    # 4x4 regions on a 16x16 map; region ranking: (1, 2) > (3, 0) > (0, 0) > everything else
    amap = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(3)) * 0.01
    for (by, bx), v in zip([(1, 2), (3, 0), (0, 0)], [3.0, 2.0, 1.0]):
        amap[:, by * 4:(by + 1) * 4, bx * 4:(bx + 1) * 4] += v
    res = attacks.inductive_occlusion(_Constant(), x, y, amap, region=4, max_count=2, max_radius=1, color="white")
    expected = torch.zeros(16, 16, dtype=torch.bool)
    for cy, cx in [(6, 10), (14, 2)]:                          # centres of the two top blocks, squares [c-1, c+1)
        expected[cy - 1:cy + 1, cx - 1:cx + 1] = True
    changed = (res.x_adv != x)
    assert torch.equal(changed, expected.expand(2, 3, 16, 16)) and (res.x_adv[changed] == 1.0).all()
    assert not res.success.any() and (res.count == 0).all() and (res.radius == 0).all()
    # the largest budget with radius 3: squares [c-3, c+3), clipped at the border
    res = attacks.inductive_occlusion(_Constant(), x, y, amap, region=4, max_count=3, max_radius=3, color=0.3)
    expected = torch.zeros(16, 16, dtype=torch.bool)
    for cy, cx in [(6, 10), (14, 2), (2, 2)]:
        expected[max(cy - 3, 0):cy + 3, max(cx - 3, 0):cx + 3] = True
    assert torch.equal(res.x_adv != x, expected.expand(2, 3, 16, 16))
    torch.testing.assert_close(res.x_adv[res.x_adv != x], torch.full_like(res.x_adv[res.x_adv != x], 0.3))


def test_inductive_occlusion_budget_order_and_success():
    x = _images(B=1, H=16, W=16)
    x[..., 15, 0] = 0.0                                        # the image minimum is 0: released 'black' = 0 too
    y = torch.zeros(1, dtype=torch.long)
    amap = torch.zeros(1, 16, 16)
    amap[0, 4, 4], amap[0, 12, 12] = 2.0, 1.0                  # pixel regions: centre 1 at (4, 4), centre 2 (12, 12)
    model = _PixelIsBlack((12, 9))                             # reached by centre 2 with radius >= 3 only
    paper = attacks.inductive_occlusion(model, x, y, amap, region=1, max_count=2, max_radius=4)
    assert paper.success.all() and (paper.count.item(), paper.radius.item()) == (2, 3)
    assert paper.x_adv[0, :, 12, 9].eq(0).all()
    # pixel A: centre 1 with radius 3; pixel B: centre 2 with radius 1. Algorithm 1 grows the radius first
    # (count outer), the released code the count first (radius outer)
    model = _PixelIsBlack((4, 1), (12, 12))
    paper = attacks.inductive_occlusion(model, x, y, amap, region=1, max_count=2, max_radius=4)
    released = attacks.inductive_occlusion(model, x, y, amap, region=1, max_count=2, max_radius=4,
                                           setting="released")
    assert (paper.count.item(), paper.radius.item()) == (1, 3)
    assert (released.count.item(), released.radius.item()) == (2, 1)
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[3:5, 3:5] = expected[11:13, 11:13] = True        # two squares [c - 1, c + 1)
    assert torch.equal(released.x_adv != x, expected.expand(1, 3, 16, 16))
    assert (released.x_adv[released.x_adv != x] == 0).all()
    with pytest.raises(ValueError, match="max_count"):
        attacks.inductive_occlusion(model, x, y, amap, region=4, max_count=17, max_radius=1)
    with pytest.raises(ValueError, match="color"):
        attacks.inductive_occlusion(model, x, y, amap, region=4, max_count=1, max_radius=1, color="red")
    with pytest.raises(ValueError, match="region"):
        attacks.inductive_occlusion(model, x, y, amap, region=0, max_count=1, max_radius=1)


# ----------------------------------------------------------------------------------------------------------------------
# hygiene and bad input shared by every attack
# ----------------------------------------------------------------------------------------------------------------------
def test_every_attack_restores_model_state(tiny):
    model, x, y = tiny
    x, y = x[:2], y[:2]
    amap = attribution.to_saliency_map(attribution.attribute(model, x, y, "ig", n_steps=4))
    model.train()
    model.net.features.eval()                                  # a mixed state must survive too
    flags = {n: m.training for n, m in model.named_modules()}
    n_relu = sum(isinstance(m, nn.ReLU) for m in model.modules())
    calls = [
        lambda: attacks.pgd(model, x, y, EPS, 1 / 255, 1),
        lambda: attacks.ifia(model, x, y, k=5, eps=EPS, step_size=1 / 255, steps=1, n_steps_ig=4),
        lambda: attacks.ifia(model, x, y, k=5, eps=EPS, step_size=1 / 255, steps=1, n_steps_ig=4, setting="official"),
        lambda: attacks.targeted_attribution_attack(model, x, amap.flip(0), EPS, 1 / 255, 1, n_steps_ig=4),
        lambda: attacks.spsa(model, x, y, EPS, 1, n_samples=2),
        lambda: attacks.spatial_attack(model, x, y, rotations=[0, 5], translations=[0]),
        lambda: attacks.inductive_noise(model, x, y, amap, 4),
        lambda: attacks.inductive_occlusion(model, x, y, amap, 4, 2, 2),
    ]
    try:
        for call in calls:
            call()
            assert {n: m.training for n, m in model.named_modules()} == flags
            assert all(p.requires_grad and p.grad is None for p in model.parameters())
            assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == n_relu     # softplus swap undone
            assert not any(isinstance(m, nn.Softplus) for m in model.modules())
    finally:
        model.eval()


def test_bad_inputs_raise_clearly(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attacks.pgd(model, x, y, -1.0, 0.1, 1)
    with pytest.raises(ValueError, match="unknown norm 'l1'"):
        attacks.pgd(model, x, y, 0.1, 0.1, 1, norm="l1")
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        attacks.pgd(model, x[0], y, 0.1, 0.1, 1)
    with pytest.raises(ValueError, match="integer Tensor"):
        attacks.pgd(model, x, y.float(), 0.1, 0.1, 1)
    with pytest.raises(ValueError, match="steps must be an int"):
        attacks.pgd(model, x, y, 0.1, 0.1, 2.5)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attacks.spsa(model, x, y, -0.1, 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attacks.spatial_attack(model, x + 1, y)
    with pytest.raises(ValueError, match="batch size"):
        attacks.inductive_occlusion(model, x, y[:2], x, 4, 1, 1)
    assert not math.isnan(float(attacks.pgd(model, x, y, 0.0, 0.1, 2).sub(x).abs().max()))
    assert torch.equal(attacks.pgd(model, x, y, 0.0, 0.1, 2), x)                      # eps 0: x itself


# ----------------------------------------------------------------------------------------------------------------------
# the Inequality paper's released-script variants (issue 11): budgets and names
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["I", "II"])
def test_released_noise_variant_respects_its_budget(kind):
    """noise_eval.py: the N largest *signed* entries over C*H*W get U(min x, max x) noise (added or written), clamped
    to the image's own range; nothing else changes."""
    x = _images(B=3, H=16, W=16)
    attr = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    y = torch.zeros(3, dtype=torch.long)
    N = 50
    res = attacks.inductive_noise(_Constant(), x, y, attr, N, kind=kind, variant="released", seed=0)
    top = torch.zeros(3, 3 * 16 * 16, dtype=torch.bool).scatter_(1, attr.flatten(1).topk(N).indices, True)
    changed = (res.x_adv != x).flatten(1)
    assert bool((changed <= top).all()) and int(changed.sum(1).max()) <= N
    assert int(changed.sum(1).min()) >= N - 5        # (an added draw can clamp back to the same value, rarely)
    lo, hi = x.flatten(1).amin(1, keepdim=True), x.flatten(1).amax(1, keepdim=True)
    assert bool(((res.x_adv.flatten(1) >= lo) & (res.x_adv.flatten(1) <= hi)).all())
    same = attacks.inductive_noise(_Constant(), x, y, attr, N, kind=kind, setting="released", seed=0)
    assert torch.equal(same.x_adv, res.x_adv)   # variant= is setting='released' under the name


def test_released_occlusion_variant_respects_its_budget():
    """occlusion_eval.py: channel-mean (signed) map, squares of side 2r at the c largest pixels, black = the image's
    minimum; with a model that never flips, the attack ends at its largest budget (c, r) = (max_count, max_radius)."""
    x = _images(B=2, H=16, W=16)
    attr = torch.randn(x.shape, generator=torch.Generator().manual_seed(8))
    y = torch.zeros(2, dtype=torch.long)
    res = attacks.inductive_occlusion(_Constant(), x, y, attr, region=1, max_count=3, max_radius=2, variant="released")
    amap = attr.mean(1).flatten(1)
    for b in range(2):
        expected = torch.zeros(16, 16, dtype=torch.bool)
        for i in amap[b].topk(3).indices.tolist():
            cy, cx = divmod(i, 16)
            expected[max(cy - 2, 0):cy + 2, max(cx - 2, 0):cx + 2] = True
        assert bool((res.x_adv[b][:, expected] == x[b].min()).all())      # occluded with the image's minimum
        assert torch.equal(res.x_adv[b][:, ~expected], x[b][:, ~expected])  # nothing else changed
    assert not res.success.any()


def test_variant_names_raise_listing_the_choices():
    x = _images()
    attr, y = torch.randn(x.shape), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"unknown variant 'official'; choose one of \['paper', 'released'\]"):
        attacks.inductive_noise(_Constant(), x, y, attr, 5, variant="official")
    with pytest.raises(ValueError, match=r"unknown variant 'code'; choose one of \['paper', 'released'\]"):
        attacks.inductive_occlusion(_Constant(), x, y, attr, region=1, max_count=1, max_radius=1, variant="code")
    with pytest.raises(ValueError, match="contradicts"):
        attacks.inductive_noise(_Constant(), x, y, attr, 5, setting="released", variant="paper")
    with pytest.raises(ValueError, match=r"unknown setting 'released'; choose one of \['paper', 'official'\]"):
        attacks.ifia(_Constant(), x, y, k=5, eps=EPS, step_size=1 / 255, steps=1, setting="released")
