"""artlib.metrics: Gini (global / regional), Kendall tau-b, top-k intersection, cosine, accuracy helpers.

References are independent: a direct numpy transcription of the Inequality paper's Gini formula (Sec. 3.1), the
authors' released ``index.py`` formula, ``scipy.stats.kendalltau``, brute-force pair counts and Python sets.
"""
import itertools

import numpy as np
import pytest
import scipy.stats
import torch

from artlib import metrics

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------------------------------------------------------
# references
# ---------------------------------------------------------------------------------------------------------------
def gini_paper_np(v):
    """Inequality paper Sec. 3.1, transcribed: phi sorted non-decreasing, i = 1..n."""
    phi = np.sort(np.asarray(v, dtype=np.float64))
    n = len(phi)
    if phi.sum() == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return (n + 1 - 2 * np.sum((n + 1 - i) * phi) / phi.sum()) / n


def gini_released_np(v):
    """The authors' released index.py: sort descending, w = v / sum, G = 1 + (1 - 2 sum i w_i) / n."""
    d = np.sort(np.asarray(v, dtype=np.float64))[::-1]
    w = d / d.sum()
    n = len(d)
    return 1 + (1 - 2 * np.sum(np.arange(1, n + 1) * w)) / n


def inversions_brute(y):
    y = list(y)
    return sum(1 for i, j in itertools.combinations(range(len(y)), 2) if y[i] > y[j])


# ---------------------------------------------------------------------------------------------------------------
# gini
# ---------------------------------------------------------------------------------------------------------------
def test_gini_paper_appendix_values():
    g = metrics.gini(torch.tensor([[0.0, 0, 0, 1, 1], [0.0, 0, 0, 1, 1000]]))
    assert g.shape == (2,)
    assert g[0].item() == pytest.approx(0.6, abs=1e-7)
    assert g[1].item() == pytest.approx(4002 / 5005, abs=1e-7)  # 0.79960...
    assert round(g[1].item(), 4) == 0.7996


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gini_matches_numpy_transcriptions(dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(50, 37, generator=gen, dtype=torch.float64) ** 4  # skewed
    x[::7, ::3] = 0.0
    x = x.to(dtype)
    g = metrics.gini(x)
    assert g.dtype == dtype and g.shape == (50,)
    ref = np.array([gini_paper_np(r) for r in x.double().numpy()])
    rel = np.array([gini_released_np(r) for r in x.double().numpy()])
    np.testing.assert_allclose(ref, rel, atol=1e-12)  # paper formula == released code's formula
    np.testing.assert_allclose(g.double().numpy(), ref, atol=1e-6 if dtype == torch.float32 else 1e-12)


def test_gini_dim_argument_and_shapes():
    x = torch.rand(4, 5, 6, dtype=torch.float64)
    for dim in (0, 1, 2, -1):
        g = metrics.gini(x, dim=dim)
        expected_shape = tuple(s for k, s in enumerate(x.shape) if k != dim % 3)
        assert g.shape == expected_shape
        moved = x.movedim(dim, -1).reshape(-1, x.shape[dim]).numpy()
        np.testing.assert_allclose(g.reshape(-1).numpy(), [gini_paper_np(r) for r in moved], atol=1e-12)


def test_gini_edge_cases_never_nan():
    g = metrics.gini(torch.tensor([[0.0, 0, 0, 0], [3.0, 3, 3, 3], [0.0, 0, 0, 7], [5.0, 0, 0, 0]]))
    assert not torch.isnan(g).any()
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, 0.75, 0.75]))  # single non-zero: 1 - 1/n
    assert metrics.gini(torch.tensor([[2.5]])).item() == 0.0
    assert metrics.gini(torch.zeros(3, 1000)).eq(0).all()


def test_gini_invariances():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 64, generator=gen, dtype=torch.float64)
    g = metrics.gini(x)
    torch.testing.assert_close(metrics.gini(x * 123.4), g)                      # scale invariance
    torch.testing.assert_close(metrics.gini(x[:, torch.randperm(64, generator=gen)]), g)  # permutation invariance
    torch.testing.assert_close(metrics.gini(x.repeat(1, 3)), g)                 # replication invariance
    y = x.clone()
    y[:, 0] += 10.0                                                             # concentrating mass raises Gini
    assert (metrics.gini(y) > g).all()
    assert ((g >= 0) & (g <= 1 - 1 / 64)).all()


def test_gini_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        metrics.gini(torch.tensor([[0.5, -0.1, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        metrics.gini(torch.tensor([[0.5, float("nan")]]))
    with pytest.raises(ValueError):
        metrics.gini(torch.empty(3, 0))
    with pytest.raises(ValueError):
        metrics.gini([0.0, 1.0])


def test_gini_global_reads_abs_over_all_entries():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(3, 3, 8, 8, generator=gen, dtype=torch.float64)
    g = metrics.gini_global(a)
    ref = [gini_paper_np(np.abs(s).ravel()) for s in a.numpy()]
    np.testing.assert_allclose(g.numpy(), ref, atol=1e-12)
    rel = [gini_paper_np(np.clip(s, 0, None).ravel()) for s in a.numpy()]
    np.testing.assert_allclose(metrics.gini_global(a, setting="released").numpy(), rel, atol=1e-12)
    assert not np.allclose(ref, rel)
    with pytest.raises(ValueError, match="setting"):
        metrics.gini_global(a, setting="code")
    with pytest.raises(ValueError):
        metrics.gini_global(torch.rand(5))


def test_gini_regional_blocks():
    a = torch.zeros(1, 3, 8, 8)
    a[0, :, :4, :4] = -1.0  # |a| all in one of four 4x4 blocks
    assert metrics.gini_regional(a, 4).item() == pytest.approx(0.75)
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 3, 16, 16, generator=gen, dtype=torch.float64)
    for r in (1, 2, 4, 8, 16):
        got = metrics.gini_regional(a, r)
        ref = []
        for s in np.abs(a.numpy()).sum(1):  # channel sum of |a|, one [H, W] map per sample
            blocks = [s[i:i + r, j:j + r].sum() for i in range(0, 16, r) for j in range(0, 16, r)]
            ref.append(gini_paper_np(blocks))
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)
    # region 1 on a map == global Gini of that map; [B, H, W] input accepted
    m = a.abs().sum(1)
    torch.testing.assert_close(metrics.gini_regional(m, 1), metrics.gini_global(m))
    # the released code's form (block sum written into every entry, Gini over C x H x W) gives the same value
    pos = a.clamp_min(0)
    blk = pos.sum(1).reshape(4, 4, 4, 4, 4).sum((2, 4))                         # [B, 4, 4] block sums
    filled = blk.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1).expand(-1, 3, -1, -1)
    torch.testing.assert_close(metrics.gini_regional(a, 4, setting="released"), metrics.gini_global(filled))


def test_gini_regional_bad_input():
    with pytest.raises(ValueError, match="does not divide"):
        metrics.gini_regional(torch.rand(2, 3, 10, 10), 4)
    with pytest.raises(ValueError, match="region"):
        metrics.gini_regional(torch.rand(2, 3, 8, 8), 0)
    with pytest.raises(ValueError):
        metrics.gini_regional(torch.rand(2, 3, 8, 8), 2.0)
    with pytest.raises(ValueError):
        metrics.gini_regional(torch.rand(8, 8), 2)


# ---------------------------------------------------------------------------------------------------------------
# kendall tau
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,y_max", [(2, 2), (7, 3), (50, 50), (100, 1000), (257, 40), (1024, 8), (1024, 10**6)])
def test_inversions_match_brute_force(n, y_max):
    gen = torch.Generator().manual_seed(n)
    y = torch.randint(0, y_max, (3, n), generator=gen)
    got = metrics._inversions(y, y_max)
    if n <= 257:
        assert got.tolist() == [inversions_brute(r) for r in y.tolist()]
    else:  # O(N^2) numpy count for the long rows
        ref = [int((np.triu(r[:, None] > r[None, :], 1)).sum()) for r in y.numpy()]
        assert got.tolist() == ref


@pytest.mark.parametrize("shape,levels", [((20, 2), 2), ((20, 3, 5), 3), ((12, 17, 9), 6), ((10, 32, 32), 5),
                                          ((10, 32, 32), 1000), ((6, 3, 11, 7), 4)])
def test_kendall_matches_scipy_with_ties(shape, levels):
    gen = torch.Generator().manual_seed(sum(shape) + levels)
    a = torch.randint(0, levels, shape, generator=gen).double()
    b = torch.randint(0, levels, shape, generator=gen).double()
    b[:2] = a[:2]          # identical maps
    b[2] = -a[2]           # reversed ranks
    got = metrics.kendall_tau(a, b)
    assert got.shape == (shape[0],) and got.dtype == torch.float64
    ref = np.array([scipy.stats.kendalltau(x.ravel(), y.ravel()).statistic
                    for x, y in zip(a.numpy(), b.numpy())])
    np.testing.assert_array_equal(np.isnan(got.numpy()), np.isnan(ref))
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10, equal_nan=True)


def test_kendall_continuous_float32_and_chunking(monkeypatch):
    gen = torch.Generator().manual_seed(5)
    a = torch.rand(37, 16, 16, generator=gen)
    b = a + 0.3 * torch.rand(37, 16, 16, generator=gen)
    b[:, :4] = 0.0                                             # a block of exact ties (a zero region)
    ref = np.array([scipy.stats.kendalltau(x.ravel(), y.ravel()).statistic for x, y in zip(a.numpy(), b.numpy())])
    whole = metrics.kendall_tau(a, b)
    np.testing.assert_allclose(whole.numpy(), ref, atol=1e-5)
    for budget in (1, 100_000):                                   # 1 and a few samples per chunk
        monkeypatch.setattr(metrics, "_CHUNK_ELEMS", budget)
        torch.testing.assert_close(metrics.kendall_tau(a, b), whole, rtol=0, atol=0)


@pytest.mark.parametrize("side", [128, 190])  # Flowers-size maps (int16 counts) and > 2**15 values (int32 counts)
def test_kendall_large_maps(side):
    gen = torch.Generator().manual_seed(side)
    a = torch.rand(2, side, side, generator=gen)
    b = (a + torch.rand(2, side, side, generator=gen)).round(decimals=2)
    ref = [scipy.stats.kendalltau(x.ravel(), y.ravel()).statistic for x, y in zip(a.numpy(), b.numpy())]
    np.testing.assert_allclose(metrics.kendall_tau(a, b).numpy(), ref, atol=1e-9)


def test_kendall_special_values_and_bad_input():
    x = torch.arange(16.0).view(1, 4, 4)
    assert metrics.kendall_tau(x, x).item() == pytest.approx(1.0)
    assert metrics.kendall_tau(x, -x).item() == pytest.approx(-1.0)
    assert torch.isnan(metrics.kendall_tau(x, torch.ones_like(x))).all()  # undefined, as scipy
    torch.testing.assert_close(metrics.kendall_tau(torch.tensor([[1.0, 2, 3, 4]]), torch.tensor([[1.0, 3, 2, 4]])),
                               torch.tensor([2 / 3], dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        metrics.kendall_tau(torch.rand(2, 4, 4), torch.rand(2, 4, 5))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.kendall_tau(torch.rand(2, 1), torch.rand(2, 1))
    with pytest.raises(ValueError, match="NaN"):
        metrics.kendall_tau(torch.tensor([[1.0, float("nan")]]), torch.rand(1, 2))
    with pytest.raises(ValueError, match="batched"):
        metrics.kendall_tau(torch.rand(5), torch.rand(5))


# ---------------------------------------------------------------------------------------------------------------
# top-k intersection
# ---------------------------------------------------------------------------------------------------------------
def test_topk_matches_python_sets():
    gen = torch.Generator().manual_seed(6)
    B, H, W = 25, 8, 8
    a = torch.stack([torch.randperm(H * W, generator=gen) for _ in range(B)]).float().view(B, H, W)
    b = a.clone()
    b[5:] = torch.stack([torch.randperm(H * W, generator=gen) for _ in range(B - 5)]).float().view(B - 5, H, W)
    for k in (1, 5, 17, 64):
        got = metrics.topk_intersection(a, b, k)
        ref = []
        for x, y in zip(a.view(B, -1).tolist(), b.view(B, -1).tolist()):
            sa = set(sorted(range(H * W), key=lambda i: -x[i])[:k])
            sb = set(sorted(range(H * W), key=lambda i: -y[i])[:k])
            ref.append(len(sa & sb) / k)
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-7)
        assert got[:5].eq(1).all()
    assert metrics.topk_intersection(a, b, H * W).eq(1).all()


def test_topk_tie_rule_lower_index_first():
    a = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])      # ties: top-2 = {0, 1}
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])      # top-2 = {2, 3}
    assert metrics.topk_intersection(a, b, 2).item() == 0.0
    c = torch.tensor([[0.0, 5.0, 5.0, 5.0, 0.0]])      # top-2 = {1, 2}
    assert metrics.topk_intersection(a, c, 2).item() == 0.5


def test_topk_bad_input():
    a = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match=r"\[1, 16\]"):
        metrics.topk_intersection(a, a, 17)
    with pytest.raises(ValueError):
        metrics.topk_intersection(a, a, 0)
    with pytest.raises(ValueError):
        metrics.topk_intersection(a, a, 2.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.topk_intersection(a, torch.rand(3, 4, 4), 2)


# ---------------------------------------------------------------------------------------------------------------
# cosine, accuracy, error rate
# ---------------------------------------------------------------------------------------------------------------
def test_grad_image_cosine():
    gen = torch.Generator().manual_seed(7)
    g = torch.randn(6, 3, 5, 5, generator=gen, dtype=torch.float64)
    x = torch.rand(6, 3, 5, 5, generator=gen, dtype=torch.float64)
    got = metrics.grad_image_cosine(g, x)
    gf, xf = g.view(6, -1).numpy(), x.view(6, -1).numpy()
    ref = (gf * xf).sum(1) / np.linalg.norm(gf, axis=1) / np.linalg.norm(xf, axis=1)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12)
    torch.testing.assert_close(metrics.grad_image_cosine(-2 * x, x), -torch.ones(6, dtype=torch.float64))
    assert metrics.grad_image_cosine(torch.zeros(2, 3, 4, 4), torch.rand(2, 3, 4, 4)).eq(0).all()
    with pytest.raises(ValueError):
        metrics.grad_image_cosine(g, x[:, :2])


def test_accuracy_and_error_rate():
    logits = torch.tensor([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.5, 0.0]])
    y = torch.tensor([1, 0, 0, 0])
    assert metrics.correct(logits, y).tolist() == [True, True, False, True]
    assert metrics.accuracy(logits, y).item() == pytest.approx(0.75)
    assert metrics.accuracy(logits.argmax(1), y).item() == pytest.approx(0.75)
    after = torch.tensor([[0.1, 2.0, 0.3], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.5, 1.0]])
    assert metrics.prediction_changed(logits, after).tolist() == [False, True, False, True]
    assert metrics.error_rate(logits, after).item() == pytest.approx(0.5)
    assert metrics.error_rate(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 2, 2, 0])).item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.accuracy(logits, torch.tensor([1, 0]))
    with pytest.raises(ValueError):
        metrics.error_rate(torch.tensor([0.5, 1.5]), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        metrics.accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


@pytest.mark.parametrize("device", DEVICES)
def test_metrics_batched_large_and_device(device):
    """B in the thousands, one call each, results on the input device and equal to per-sample CPU values."""
    gen = torch.Generator().manual_seed(8)
    a = torch.rand(2000, 8, 8, generator=gen)
    b = (a + 0.5 * torch.rand(2000, 8, 8, generator=gen)).round(decimals=1)  # ties
    ad, bd = a.to(device), b.to(device)
    outs = {"kendall": metrics.kendall_tau(ad, bd), "topk": metrics.topk_intersection(ad, bd, 10),
            "gini_g": metrics.gini_global(ad - 0.5), "gini_r": metrics.gini_regional(ad - 0.5, 4),
            "cos": metrics.grad_image_cosine(ad - 0.5, bd)}
    for name, v in outs.items():
        assert v.shape == (2000,) and v.device.type == device, name
    idx = [0, 999, 1999]
    ref = [scipy.stats.kendalltau(a[i].ravel().numpy(), b[i].ravel().numpy()).statistic for i in idx]
    np.testing.assert_allclose(outs["kendall"].cpu()[idx].numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(outs["gini_g"].cpu()[idx].numpy(),
                               [gini_paper_np(np.abs(a[i].numpy() - 0.5).ravel()) for i in idx], atol=1e-5)


# issue 11: the released code's positive part under the name
def test_gini_part_positive_is_gini_of_the_clamped_values():
    g = torch.Generator().manual_seed(11)
    a = torch.randn(4, 3, 8, 8, generator=g)
    pos = metrics.gini_global(a, part="positive")
    torch.testing.assert_close(pos, metrics.gini(a.clamp_min(0).flatten(1)))
    torch.testing.assert_close(pos, metrics.gini_global(a, setting="released"))
    torch.testing.assert_close(metrics.gini_global(a, part="abs"), metrics.gini(a.abs().flatten(1)))
    reg = metrics.gini_regional(a, 4, part="positive")
    blocks = a.clamp_min(0).sum(1).reshape(4, 2, 4, 2, 4).sum((2, 4)).flatten(1)
    torch.testing.assert_close(reg, metrics.gini(blocks))
    assert not torch.allclose(pos, metrics.gini_global(a, part="abs"))
    with pytest.raises(ValueError, match="unknown part 'negative'; choices: 'abs', 'positive'"):
        metrics.gini_global(a, part="negative")
    with pytest.raises(ValueError, match="unknown part 'pos'"):
        metrics.gini_regional(a, 4, part="pos")
    with pytest.raises(ValueError, match="contradicts"):
        metrics.gini_global(a, setting="released", part="abs")
