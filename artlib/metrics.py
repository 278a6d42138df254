"""Per-sample metrics on attribution maps and predictions: Gini (global / regional), Kendall tau-b, top-k intersection,
gradient-image cosine, accuracy and error-rate helpers.

Every map metric takes a batch (first axis) of maps of any trailing shape, flattens each sample, and returns a
``Tensor[B]`` computed without Python loops over samples (work is chunked over samples only to bound memory), on the
device of its inputs.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["gini", "gini_global", "gini_regional", "kendall_tau", "topk_intersection", "grad_image_cosine",
           "correct", "accuracy", "prediction_changed", "error_rate", "GINI_SETTINGS", "GINI_PARTS"]

GINI_SETTINGS = ("paper", "released")

# work-tensor budget per chunk of samples in kendall_tau (~ bytes; bounds peak memory to a few hundred MB)
_CHUNK_ELEMS = 1 << 26


def _as_tensor(v, name: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    return v


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()


_NUMPY_SORTABLE = (torch.float32, torch.float64, torch.int16, torch.int32, torch.int64, torch.uint8, torch.int8)


def _sort_rows(x: torch.Tensor, return_indices: bool = True):
    """Ascending sort of each row (ties in any order). On CPU numpy's SIMD quicksort (several times faster than
    ``torch.sort`` there, same values; zero-copy views); elsewhere ``torch.sort``."""
    if x.device.type == "cpu" and x.dtype in _NUMPY_SORTABLE:
        xn = x.detach().contiguous().numpy()
        if not return_indices:
            return torch.from_numpy(np.sort(xn, axis=1)), None
        idx = np.argsort(xn, axis=1)
        return torch.from_numpy(np.take_along_axis(xn, idx, 1)), torch.from_numpy(idx).long()
    out = torch.sort(x, dim=1)
    return out.values, out.indices


# --------------------------------------------------------------------------------------------------------------
# Gini
# --------------------------------------------------------------------------------------------------------------
def gini(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Gini index of non-negative values along ``dim`` (Inequality paper, Sec. 3.1; Dorfman 1979).

    With ``phi_1 <= ... <= phi_n`` the values sorted in non-decreasing order,

    .. math::
        \mathrm{Gini}(\Phi) = \frac{1}{n}\Big(n + 1 - 2\,\frac{\sum_{i=1}^n (n+1-i)\,\phi_i}{\sum_{i=1}^n \phi_i}\Big)

    which equals the mean absolute difference ``sum_ij |phi_i - phi_j| / (2 n^2 mean)``; it ranges from 0 (all equal)
    to ``1 - 1/n`` (a single non-zero value). Appendix A.3 examples: ``[0,0,0,1,1] -> 0.6``,
    ``[0,0,0,1,1000] -> 0.7996``. All-zero input gives 0 (not NaN). Sums are accumulated in float64.

    Args:
        values (Tensor): non-negative values, any shape.
        dim (int): axis holding the population. Default -1.

    Returns:
        Tensor: ``values`` with ``dim`` removed (float, ``values.dtype`` if floating point).

    Raises:
        ValueError: negative, NaN or infinite values, or an empty population.

    Example::

        >>> gini(torch.tensor([[0., 0, 0, 1, 1], [0., 0, 0, 1, 1000]]))
        tensor([0.6000, 0.7996])
    """
    values = _as_tensor(values, "values")
    if values.dim() == 0:
        raise ValueError("values must have at least one dimension")
    n = values.shape[dim]
    if n == 0:
        raise ValueError(f"gini needs at least one value along dim={dim}, got shape {tuple(values.shape)}")
    if values.is_complex():
        raise ValueError("gini needs real values")
    if not bool(torch.isfinite(values).all()):
        bad = "NaN" if bool(torch.isnan(values).any()) else "inf"
        raise ValueError(f"gini needs finite values, got {bad} (shape {tuple(values.shape)}); check the attribution "
                         f"or the image it came from")
    if (values < 0).any():
        raise ValueError(f"gini is defined for non-negative values; got minimum {values.min().item():.4g} "
                         "(take .abs() or the positive part first)")
    out_dtype = _acc_dtype(values)
    v = values.movedim(dim, -1).to(torch.float64)
    s = _sort_rows(v.reshape(-1, n), return_indices=False)[0].view(v.shape)
    w = torch.arange(n, 0, -1, dtype=torch.float64, device=v.device)  # n+1-i for i = 1..n
    total = s.sum(-1)
    weighted = (s * w).sum(-1)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    g = (n + 1 - 2 * weighted / safe) / n
    g = torch.where(total > 0, g.clamp_min(0.0), torch.zeros_like(g))
    return g.to(out_dtype)


#: ``part`` of :func:`gini_global` / :func:`gini_regional` and the ``setting`` each one is.
GINI_PARTS = {"abs": "paper", "positive": "released"}


def _gini_input(attr: torch.Tensor, setting: str, part: Optional[str] = None) -> torch.Tensor:
    if setting not in GINI_SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {list(GINI_SETTINGS)}")
    if part is not None:
        if part not in GINI_PARTS:
            raise ValueError(f"unknown part {part!r}; choices: {', '.join(map(repr, GINI_PARTS))}")
        if setting != "paper" and GINI_PARTS[part] != setting:
            raise ValueError(f"part={part!r} contradicts setting={setting!r}; give one of them")
        setting = GINI_PARTS[part]
    return attr.abs() if setting == "paper" else attr.clamp_min(0)


def gini_global(attr: torch.Tensor, setting: str = "paper", *, part: Optional[str] = None) -> torch.Tensor:
    r"""Global inequality ``Gini_g``: Gini of the flattened attribution of each sample (Inequality paper, Sec. 3.1/4.2).

    Reading of the paper: "We applied the Gini index to the sorted absolute value of the flattened feature attribution
    maps" — so ``|a|`` over **all** entries of each sample (``C x H x W`` for an attribution shaped like the image;
    no channel sum first), which is also what the authors' released ``inequality_test.py`` flattens.

    Args:
        attr (Tensor): attributions ``[B, ...]`` (e.g. ``[B, C, H, W]`` or maps ``[B, H, W]``).
        setting (str): ``"paper"`` (default): ``|a|``; ``"released"``: the positive part ``max(a, 0)``, as the
            authors' code after commit 267c92a (``papers/baselines_code_facts.md`` §4.3).
        part (str, optional): the same choice by what is taken: ``"abs"`` (= ``"paper"``) or ``"positive"``
            (= ``"released"``, ``a * [a > 0]``). Overrides ``setting`` when given.

    Returns:
        Tensor[B].

    Example::

        >>> gini_global(torch.tensor([[[0., 0], [0, 5]]]))
        tensor([0.7500])
    """
    attr = _as_tensor(attr, "attr")
    if attr.dim() < 2:
        raise ValueError(f"attr must be batched [B, ...], got shape {tuple(attr.shape)}")
    return gini(_gini_input(attr, setting, part).flatten(1), dim=-1)


def gini_regional(attr: torch.Tensor, region: int, setting: str = "paper", *,
                  part: Optional[str] = None) -> torch.Tensor:
    r"""Regional inequality ``Gini_r``: Gini of per-block attribution sums (Inequality paper, Sec. 3.1/4.2).

    The ``H x W`` plane is cut into non-overlapping ``region x region`` blocks (paper: 4x4 on CIFAR-10, 16x16 on
    ImageNet); each block's value is the sum of ``|a|`` over its pixels and all channels; the Gini is taken over the
    ``(H/region)(W/region)`` block values. (The released code writes each block sum into every entry of the block and
    takes the Gini over the full ``C x H x W`` array; the Gini is invariant to replicating every value equally, so the
    two are identical.)

    Args:
        attr (Tensor): ``[B, C, H, W]`` attributions or ``[B, H, W]`` maps.
        region (int): block side in pixels; must divide ``H`` and ``W``.
        setting (str): ``"paper"`` (``|a|``, default) or ``"released"`` (positive part), as :func:`gini_global`.
        part (str, optional): ``"abs"`` or ``"positive"``, as :func:`gini_global`.

    Returns:
        Tensor[B].

    Raises:
        ValueError: ``region`` not a positive int dividing ``H`` and ``W``, or bad ``attr`` shape.

    Example::

        >>> a = torch.zeros(1, 3, 8, 8); a[0, :, :4, :4] = 1.0   # everything in one of four 4x4 blocks
        >>> gini_regional(a, 4)
        tensor([0.7500])
    """
    attr = _as_tensor(attr, "attr")
    if attr.dim() not in (3, 4):
        raise ValueError(f"attr must be [B, C, H, W] or [B, H, W], got shape {tuple(attr.shape)}")
    if not isinstance(region, int) or isinstance(region, bool) or region < 1:
        raise ValueError(f"region must be a positive int, got {region!r}")
    H, W = attr.shape[-2:]
    if H % region or W % region:
        raise ValueError(f"region={region} does not divide the map size H x W = {H} x {W}")
    a = _gini_input(attr, setting, part)
    if a.dim() == 4:
        a = a.sum(1)
    B = a.shape[0]
    blocks = a.reshape(B, H // region, region, W // region, region).sum((2, 4))
    return gini(blocks.flatten(1), dim=-1)


# --------------------------------------------------------------------------------------------------------------
# rank metrics
# --------------------------------------------------------------------------------------------------------------
def _flat_pair(a: torch.Tensor, b: torch.Tensor, name: str):
    a, b = _as_tensor(a, "a"), _as_tensor(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"{name}: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() < 2:
        raise ValueError(f"{name}: maps must be batched [B, ...], got shape {tuple(a.shape)}")
    if a.device != b.device:
        raise ValueError(f"{name}: a and b are on different devices ({a.device}, {b.device})")
    return a.flatten(1), b.flatten(1)


def _tie_pairs(group_start: torch.Tensor) -> torch.Tensor:
    """Number of tied pairs per row, ``sum_g t_g (t_g - 1) / 2``, from a [B, N] bool mask of group starts of sorted
    rows: an element at position p with group start q contributes p - q tied pairs (its equal predecessors)."""
    N = group_start.shape[1]
    pos = torch.arange(N, device=group_start.device).expand_as(group_start)
    start_pos = torch.where(group_start, pos, torch.zeros_like(pos)).cummax(1).values
    return (pos - start_pos).sum(1)


def _inversion_blocks(N: int, V: int):
    """Block size S (a power of two ~ 2 sqrt(V), at most 256 so pair counts per row fit in uint8) and block count."""
    S = 1 << max(3, (2 * math.isqrt(max(V, 1)) - 1).bit_length())   # balances the two parts of the work
    S = min(S, 256, 1 << max(0, (N - 1).bit_length()))
    return S, -(-N // S)


def _inversions(y: torch.Tensor, V: int) -> torch.Tensor:
    """Strict inversions per row, ``#{i < j : y_i > y_j}``, of an integer [B, N] tensor with values in ``[0, V)``.

    Square-root decomposition, vectorised over rows: rows are cut into blocks of S ~ 2 sqrt(V) positions; pairs inside
    a block are compared directly (``B * N * S`` comparisons); pairs across blocks are counted from per-block value
    histograms, cumulated over preceding blocks and over values (a 2-D prefix sum, ``B * (N/S) * V`` work). Exact
    integer counts; ``O(N^1.5)`` per row without any sort. Rows are padded at the end with the value ``V`` (adds no
    inversion).
    """
    B, N = y.shape
    S, nb = _inversion_blocks(N, V)
    if nb * S != N:
        y = torch.cat([y, y.new_full((B, nb * S - N), V)], 1)
    yb = y.view(B, nb, S)
    # narrow counters halve the memory traffic on CPU (counts and values fit); int32 on GPUs (16-bit atomics)
    small = nb * S < 2**15 and V < 2**15 and y.device.type == "cpu"
    cdt = torch.int16 if small else torch.int32
    yc = yb.to(cdt)
    upper = torch.ones(S, S, dtype=torch.bool, device=y.device).triu(1)
    gt = yc.unsqueeze(-1) > yc.unsqueeze(-2)                             # [B, nb, S, S] pair comparisons
    gt &= upper                                                         # keep i < j
    # row sums fit in uint8 (S <= 256): summing the bool bytes in place avoids a 64-bit copy of the pair tensor
    within = gt.view(torch.uint8).sum(-1, dtype=torch.uint8).sum((1, 2), dtype=torch.long)
    if nb == 1:
        return within
    # before[k, v] = # elements with value v in blocks < k; le[k, v] = # of those with value <= v.
    # An element of block k with value v has k*S - le[k, v] larger elements before it (all earlier blocks are full).
    hist = torch.zeros(B, nb - 1, V + 1, dtype=cdt, device=y.device)
    hist.scatter_add_(2, yb[:, :-1], torch.ones_like(yb[:, :-1], dtype=cdt))
    le = hist.cumsum(1, dtype=cdt).cumsum(2, dtype=cdt)                 # [B, nb-1, V+1] for blocks 1..nb-1
    across = (S * S * (nb * (nb - 1) // 2)) - le.gather(2, yb[:, 1:]).sum((1, 2), dtype=torch.long)
    return within + across


def _dense_ranks(x: torch.Tensor):
    """Dense ranks (0, 1, ...; equal values share one) of each row of ``x`` at the original positions, and the
    tie-pair count ``sum_g t_g (t_g - 1) / 2`` per row."""
    s, idx = _sort_rows(x)
    start = torch.ones_like(s, dtype=torch.bool)
    start[:, 1:] = s[:, 1:] != s[:, :-1]
    return torch.empty_like(idx).scatter_(1, idx, start.long().cumsum(1) - 1), _tie_pairs(start)


def _kendall_chunk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    B, N = a.shape
    # Knight's algorithm as in scipy, on dense ranks: order the rows by (a, b) lexicographically (one sort of the
    # packed integer key), then the strictly discordant pairs are the strict inversions of the b-ranks.
    ra, xtie = _dense_ranks(a)
    rb, ytie = _dense_ranks(b)
    key, _ = _sort_rows(ra * (N + 1) + rb, return_indices=False)
    y = key % (N + 1)
    ab_start = torch.ones_like(key, dtype=torch.bool)
    ab_start[:, 1:] = key[:, 1:] != key[:, :-1]
    ntie = _tie_pairs(ab_start)                                         # pairs tied in both a and b
    dis = _inversions(y, N)                                             # strictly discordant pairs
    tot = N * (N - 1) // 2
    con_minus_dis = (tot - xtie - ytie + ntie - 2 * dis).to(torch.float64)
    denom = torch.sqrt((tot - xtie).to(torch.float64)) * torch.sqrt((tot - ytie).to(torch.float64))
    return con_minus_dis / denom  # NaN where a map is constant (0/0), as scipy


def kendall_tau(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Per-sample Kendall rank correlation tau-b between flattened maps (Ghorbani et al. 2019; ART Table 1).

    .. math:: \tau_b = \frac{n_c - n_d}{\sqrt{(n_0 - n_1)(n_0 - n_2)}}

    with ``n_c`` / ``n_d`` the concordant / discordant pairs, ``n_0 = N(N-1)/2`` and ``n_1``, ``n_2`` the pairs tied
    in ``a`` and in ``b`` — ``scipy.stats.kendalltau``'s default (``variant="b"``). Computed as scipy does (Knight's
    algorithm: dense ranks, rows ordered by (a, b), tie counts, discordant pairs = inversions of the b-ranks) with
    exact integer pair counts, but batched over samples with no Python loop: three row sorts (numpy's on CPU,
    ``torch.sort`` elsewhere) and a square-root-decomposition inversion count (``O(N^1.5)`` per sample, see
    ``_inversions``), chunked over samples to bound memory. A sample whose map is constant (all ties) has an
    undefined tau: NaN, as scipy returns. Speed: ``benchmarks/bench_metrics.py``.

    Args:
        a (Tensor): maps ``[B, ...]`` (flattened per sample; e.g. ``[B, H, W]`` saliency maps).
        b (Tensor): maps of the same shape.

    Returns:
        Tensor[B] (float64).

    Example::

        >>> kendall_tau(torch.tensor([[1., 2, 3, 4]]), torch.tensor([[1., 3, 2, 4]]))
        tensor([0.6667], dtype=torch.float64)
    """
    a, b = _flat_pair(a, b, "kendall_tau")
    if a.shape[1] < 2:
        raise ValueError(f"kendall_tau needs at least 2 values per sample, got {a.shape[1]}")
    if torch.isnan(a).any() or torch.isnan(b).any():
        raise ValueError("kendall_tau got NaN values")
    if a.shape[0] == 0:
        return torch.empty(0, dtype=torch.float64, device=a.device)
    N = a.shape[1]
    S, nb = _inversion_blocks(N, N)
    chunk = max(1, _CHUNK_ELEMS // (nb * (S * S + 2 * (N + 1)) + 16 * N))   # bytes-ish of work tensors per sample
    return torch.cat([_kendall_chunk(a[i:i + chunk], b[i:i + chunk]) for i in range(0, a.shape[0], chunk)])


def _topk_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask [B, N] of the top-k entries of each row; ties at the k-th value go to the lowest indices.

    No sort: the k-th largest value ``t`` (``torch.topk`` values are exact whatever its tie order), then every entry
    above ``t`` plus the first ``k - #(x > t)`` entries equal to ``t``."""
    t = torch.topk(x, k, dim=1, sorted=False).values.amin(1, keepdim=True)
    above = x > t
    at = x == t
    need = k - above.sum(1, keepdim=True)
    return above | (at & (at.cumsum(1) <= need))


def topk_intersection(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    r"""Per-sample top-k intersection ``|topk(a) ∩ topk(b)| / k`` of flattened maps (Ghorbani et al. 2019, ART).

    The top-k set of a sample is the ``k`` flat indices with the largest values. Ties at the k-th value are broken
    deterministically in favour of the **lower flat index** (as a stable descending sort would), on every device. (The
    reference ``np.argsort(map)[-k:]`` breaks such ties arbitrarily; attribution maps have exact ties only where they
    are exactly zero, e.g. saturated regions.)

    Args:
        a (Tensor): maps ``[B, ...]`` (e.g. ``[B, H, W]`` saliency maps of the clean images).
        b (Tensor): maps of the same shape (e.g. of the attacked images).
        k (int): size of the top set, ``1 <= k <= numel per sample`` (ART/Ghorbani CIFAR: 100; Flowers: 1000).

    Returns:
        Tensor[B] in ``[0, 1]`` (``a``'s dtype if floating point).

    Raises:
        ValueError: shape mismatch, or ``k`` not an int in ``[1, N]``.

    Example::

        >>> topk_intersection(torch.tensor([[4., 3, 2, 1]]), torch.tensor([[4., 1, 3, 2]]), k=2)
        tensor([0.5000])
    """
    a, b = _flat_pair(a, b, "topk_intersection")
    N = a.shape[1]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= N:
        raise ValueError(f"k must be an int in [1, {N}] (values per sample), got {k!r}")
    hits = (_topk_mask(a, k) & _topk_mask(b, k)).sum(1)
    return hits.to(_acc_dtype(a)) / k


# --------------------------------------------------------------------------------------------------------------
# gradient-image alignment and prediction helpers
# --------------------------------------------------------------------------------------------------------------
def grad_image_cosine(grad: torch.Tensor, x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    r"""Per-sample cosine similarity between the input gradient and the image, both flattened (ART Fig. 6).

    ``cos(g, x) = <g, x> / (||g|| ||x||)`` over all ``C x H x W`` entries of each sample. (ART's loss, Eq. 5, uses the
    same cosine; its appendix B.1 channel-mean variant is ``grad_image_cosine(g.abs().mean(1), x.mean(1))``.)
    A zero gradient or image gives 0.

    Args:
        grad (Tensor): input gradients ``[B, ...]`` (e.g. ``attribute(model, x, y, "saliency")``).
        x (Tensor): images of the same shape.
        eps (float): lower bound on each norm. Default 1e-12.

    Returns:
        Tensor[B] in ``[-1, 1]``.

    Example::

        >>> grad_image_cosine(torch.ones(2, 3, 4, 4), torch.ones(2, 3, 4, 4))
        tensor([1., 1.])
    """
    g, xx = _flat_pair(grad, x, "grad_image_cosine")
    return F.cosine_similarity(g, xx, dim=1, eps=eps)


def _labels(p: torch.Tensor, name: str) -> torch.Tensor:
    p = _as_tensor(p, name)
    if p.dim() == 2:
        return p.argmax(1)
    if p.dim() == 1 and not p.is_floating_point():
        return p
    raise ValueError(f"{name} must be logits [B, K] or integer labels [B], got shape {tuple(p.shape)} "
                     f"dtype {p.dtype}")


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample correctness ``argmax(logits) == y`` -> bool Tensor[B] (logits ``[B, K]`` or predicted labels ``[B]``).

    Example::

        >>> correct(torch.tensor([[0., 1], [1, 0]]), torch.tensor([1, 1]))
        tensor([ True, False])
    """
    pred, y = _labels(logits, "logits"), _labels(y, "y")
    if pred.shape != y.shape:
        raise ValueError(f"logits give {pred.shape[0]} predictions but y has shape {tuple(y.shape)}")
    return pred == y.to(pred.device)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of correct predictions, a 0-d float tensor (mean of :func:`correct`).

    Example::

        >>> accuracy(torch.tensor([[0., 1], [1, 0]]), torch.tensor([1, 1]))
        tensor(0.5000)
    """
    c = correct(logits, y)
    if c.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return c.float().mean()


def prediction_changed(pred_before: torch.Tensor, pred_after: torch.Tensor) -> torch.Tensor:
    """Per-sample flag ``f(x') != f(x)`` -> bool Tensor[B]; each argument is logits ``[B, K]`` or labels ``[B]``.

    Example::

        >>> prediction_changed(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]))
        tensor([False,  True, False])
    """
    before, after = _labels(pred_before, "pred_before"), _labels(pred_after, "pred_after")
    if before.shape != after.shape:
        raise ValueError(f"pred_before {tuple(before.shape)} and pred_after {tuple(after.shape)} differ in size")
    return before != after.to(before.device)


def error_rate(pred_before: torch.Tensor, pred_after: torch.Tensor) -> torch.Tensor:
    """Inequality paper's error rate: fraction of samples whose prediction changes, ``mean(f(x') != f(x))`` (0-d).

    The paper evaluates on images correctly classified beforehand, so this also equals the post-attack error there.

    Example::

        >>> error_rate(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 2, 2, 0]))
        tensor(0.5000)
    """
    ch = prediction_changed(pred_before, pred_after)
    if ch.numel() == 0:
        raise ValueError("error_rate of an empty batch is undefined")
    return ch.float().mean()
