"""Weakly supervised object localisation (WSOL) and segmentation from attribution maps (ART Sec. 4.2, Table 2,
Figs. 5, 7, 13; appendix B).

Pipeline, as the ART paper describes it (Sec. 4.2): take the input gradient ``\\nabla_x f(x)_y`` of a classifier,
"convert the attribution map to grayscale, normalize it and then apply a mean filtering of 3x3 kernel over it. Then a
bounding box is fit over this heatmap" the way CAM / ADL evaluations do. The pieces:

* :func:`postprocess_heatmap` — gradient ``[B, C, H, W]`` -> heatmap ``[B, H, W]`` in ``[0, 1]``
  (``setting="paper"`` or ``"official"``, the authors' released ``WSOL_CUB/utils_art/util_eval.py``).
* :func:`cam_heatmap` — CAM / Grad-CAM maps from :func:`artlib.attribution.attribute` -> ``[B, H, W]`` in ``[0, 1]``
  (the "CAM" columns of Table 2).
* :func:`localization_map` — model + images -> heatmap, for ``method`` in ``"grad"``, ``"cam"``, ``"gradcam"``.
* :func:`box_from_heatmap` — threshold at a fraction of each map's maximum, keep the largest connected component,
  return its bounding rectangle (CAM, Zhou et al. CVPR 2016; ADL; wsolevaluation).
* :func:`iou`, :func:`gt_known_loc`, :func:`top1_loc`, :func:`top1_acc` — Table 2's metrics;
  :func:`threshold_sweep` / :class:`ThresholdSweep` — the same over a grid of thresholds (clovaai/wsolevaluation's
  MaxBoxAcc: the best threshold for the whole split).
* :func:`mask_from_heatmap`, :func:`mask_from_box`, :func:`mask_iou`, :func:`top1_seg` — Fig. 7's segmentation.
* :func:`segmentation_map`, :func:`evaluate_segmentation` — Fig. 7's IG / gradient masks and Top-1 Seg;
  :func:`box_masks` — box-filled masks of a CUB split (a stand-in ground truth, not the paper's protocol).
* :func:`cub_model`, :func:`cub_test_set` — the Table 2 / Fig. 7 CUB models (smoke or ART B.1) and their test split.
* :func:`evaluate_localization` — the loop over a CUB-style dataset of ``(image, label, box)`` items.
* :func:`load_flowers17_trimaps` — the Flowers-17 segmentation ground truth in its official format.
* :func:`plot_localization`, :func:`plot_masks` — Fig. 5 / 13 and Fig. 7 panels.

Boxes are ``(x0, y0, x1, y1)`` **inclusive** pixel corners (a box covering one pixel has ``x0 == x1``), float tensors,
the convention of :func:`artlib.data.load_dataset` ("cub200"). IoU counts pixels: ``area = (x1 - x0 + 1) *
(y1 - y0 + 1)``, as wsolevaluation and the ART / ADL code do; unlike the ART code the intersection is clamped at zero.

Paper vs released code (``papers/art_official_code_facts.md``), selected with ``setting``:

========================  =====================================  ===========================================
step                      ``"paper"`` (default)                  ``"official"`` (``WSOL_CUB`` code)
========================  =====================================  ===========================================
map                       ``|grad|`` of the target logit         ``|grad|`` of the cross-entropy loss at the
                                                                 predicted class
grayscale                 mean over channels                     mean over channels
normalise                 min-max per image                      standardise per image, clip to the 2nd-98th
                                                                 percentiles, min-max
smoothing                 3x3 mean filter (zero padding)         3x3 mean filter (zero padding), then a
                                                                 Gaussian filter, sigma 3
box threshold             ``map > t * max`` on the float map     ``gray > int(t * max(gray))`` on the uint8
                                                                 gray of the cubehelix-coloured map
no foreground             box ``(0, 0, 0, 0)`` (wsolevaluation)  box ``(0, 0, 1, 1)``
default thresholds        none in the paper: ``DEFAULT_THRESHOLDS`` (grad 0.2, CAM 0.1) from the released code
========================  =====================================  ===========================================

Example::

    >>> from artlib import data, models, wsol
    >>> ds = data.load_dataset("cub200", "test")
    >>> model = models.build_model("resnet50", 200, models.IMAGENET_MEAN, models.IMAGENET_STD).eval()
    >>> res = wsol.evaluate_localization(model, ds, method="grad")
    >>> res["gt_known_loc"], res["top1_loc"], res["top1_acc"], res["best_threshold"]
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from artlib import paper_numbers
from artlib.attribution import _eval_mode  # one eval-mode-and-restore helper for the package

__all__ = ["SETTINGS", "MAP_METHODS", "DEFAULT_THRESHOLDS", "PAPER_TABLE2", "PAPER_TOP1_SEG",
           "postprocess_heatmap", "normalize_map", "cam_heatmap", "localization_map", "box_from_heatmap",
           "iou", "gt_known_loc", "top1_loc", "top1_acc", "ThresholdSweep", "threshold_sweep",
           "mask_from_heatmap", "mask_from_box", "mask_iou", "top1_seg", "evaluate_localization",
           "Flowers17Trimaps", "load_flowers17_trimaps", "TRIMAP_FOREGROUND", "plot_localization", "plot_masks",
           "SEG_METHODS", "segmentation_map", "BoxMasks", "box_masks", "evaluate_segmentation",
           "cub_model", "cub_test_set"]

SETTINGS = ("paper", "official")
MAP_METHODS = ("grad", "cam", "gradcam")
#: Box thresholds (fraction of a map's maximum) of the ART authors' released code (``util_args.py``: ``grad_thr``
#: 0.2 for gradient maps, ``cam_thr`` 0.1 for CAM); the paper states none. Grad-CAM uses the CAM value.
DEFAULT_THRESHOLDS = {"grad": 0.2, "cam": 0.1, "gradcam": 0.1}

#: Printed architecture names of ART Table 2, by the ``model`` key of ``artlib/paper_numbers.yaml``.
_TABLE2_MODEL_NAMES = {"resnet50-se": "ResNet50-SE", "resnet50": "ResNet50", "vgg-gap": "VGG-GAP"}
_TABLE2_COLUMNS = ("Grad GT-known Loc (%)", "Grad Top-1 Loc (%)", "CAM GT-known Loc (%)", "CAM Top-1 Loc (%)",
                   "Top-1 Acc (%)")


def _paper_table2() -> dict:
    rows = paper_numbers.load()["art"]["table2"]["rows"]
    return {(_TABLE2_MODEL_NAMES[r["model"]], r["method"]): tuple(r[c] for c in _TABLE2_COLUMNS) for r in rows}


def _paper_top1_seg() -> dict:
    rows = paper_numbers.load()["art"]["fig7"]["rows"]
    return {({"saliency": "grad"}.get(r["attribution"], r["attribution"]), r["method"]): r["Top-1 Seg (fraction)"]
            for r in rows}


#: ART Table 2 (CUB-200, percent), read from :mod:`artlib.paper_numbers` (``art`` / ``table2``): (printed model,
#: method) -> (Grad GT-known, Grad Top-1 Loc, CAM GT-known, CAM Top-1 Loc, Top-1 Acc). None = not reported.
#: ``ADL*`` is the number quoted from the ADL paper (ResNet50-SE).
PAPER_TABLE2 = _paper_table2()
#: ART Sec. 5 (Fig. 7 text): Top-1 Seg on Flowers-17 (fraction), read from :mod:`artlib.paper_numbers`
#: (``art`` / ``fig7``): (map, method) -> value, map ``"ig"`` or ``"grad"`` (the YAML's ``saliency``).
PAPER_TOP1_SEG = _paper_top1_seg()

BoxLike = Union[torch.Tensor, np.ndarray, Sequence]


# ----------------------------------------------------------------------------------------------------------- helpers
def _check_setting(setting: str) -> None:
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {list(SETTINGS)}")


def _check_fraction(threshold, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or \
            not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] (a fraction of the map's maximum), got {threshold!r}")
    return float(threshold)


def _maps(heatmap, name: str = "heatmap") -> tuple[torch.Tensor, bool]:
    """``[H, W]`` or ``[B, H, W]`` real tensor / array -> (``[B, H, W]`` float tensor, was_batched)."""
    if isinstance(heatmap, np.ndarray):
        heatmap = torch.from_numpy(heatmap)
    if not isinstance(heatmap, torch.Tensor):
        raise ValueError(f"{name} must be a tensor [B, H, W] or [H, W], got {type(heatmap).__name__}")
    if heatmap.dim() not in (2, 3) or heatmap.is_complex():
        raise ValueError(f"{name} must be a real tensor [B, H, W] or [H, W], got shape {tuple(heatmap.shape)}")
    if heatmap.dtype == torch.bool:
        heatmap = heatmap.float()
    elif not heatmap.is_floating_point():
        heatmap = heatmap.double()
    if torch.isnan(heatmap).any():
        raise ValueError(f"{name} contains NaN")
    batched = heatmap.dim() == 3
    return (heatmap if batched else heatmap.unsqueeze(0)), batched


def _boxes(box: BoxLike, name: str) -> torch.Tensor:
    t = box if isinstance(box, torch.Tensor) else torch.as_tensor(np.asarray(box))
    if t.dim() == 0 or t.shape[-1] != 4 or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be boxes [..., 4] as (x0, y0, x1, y1), got shape {tuple(t.shape)}")
    return t if t.is_floating_point() else t.double()


def _reduce(hits: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return hits
    if reduction == "mean":
        if hits.numel() == 0:
            raise ValueError("the mean over an empty batch is undefined")
        return hits.float().mean()
    raise ValueError(f"unknown reduction {reduction!r}; choose 'mean' or 'none'")


def normalize_map(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max normalisation to ``[0, 1]`` of ``[..., H, W]`` maps; a constant map becomes all zeros
    (wsolevaluation ``normalize_scoremap``).

    Example::

        >>> normalize_map(torch.tensor([[[1., 3.], [2., 5.]]]))
        tensor([[[0.0000, 0.5000],
                 [0.2500, 1.0000]]])
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() < 2 or not maps.is_floating_point():
        raise ValueError(f"maps must be a float tensor [..., H, W], got "
                         f"{tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}")
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    rng = maps.amax(dim=(-2, -1), keepdim=True) - lo
    out = (maps - lo) / torch.where(rng > 0, rng, torch.ones_like(rng))
    return torch.where(rng > 0, out, torch.zeros_like(out))


def _mean3x3(m: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``kernel_size`` x ``kernel_size`` mean filter with zero padding (the authors' ``nn.Conv2d(padding=1)``)."""
    k = torch.full((1, 1, kernel_size, kernel_size), 1.0 / kernel_size ** 2, dtype=m.dtype, device=m.device)
    return F.conv2d(m.unsqueeze(1), k, padding=kernel_size // 2).squeeze(1)


# ------------------------------------------------------------------------------------------------ heatmaps
def postprocess_heatmap(attr: torch.Tensor, setting: str = "paper", kernel_size: int = 3,
                        sigma: float = 3.0) -> torch.Tensor:
    r"""Turn a gradient attribution ``[B, C, H, W]`` into a localisation heatmap ``[B, H, W]`` in ``[0, 1]``.

    ART Sec. 4.2: "we convert the attribution map to grayscale, normalize it and then apply a mean filtering of
    3x3 kernel over it".

    * ``setting="paper"``: ``m = mean_c |a_c|`` (grayscale), min-max per image, ``kernel_size`` mean filter.
    * ``setting="official"`` (``WSOL_CUB/utils_art/util_eval.py``, ``evaluate_loc_grad``): ``m = mean_c |a_c|``,
      standardised per image (mean, unbiased std), clipped to its 2nd-98th percentiles, min-max, the mean filter,
      then ``scipy.ndimage.gaussian_filter(sigma=3)`` (mode ``"reflect"``, truncate 4), and min-max again (the
      code's ``intensity_to_rgb(normalize=True)`` before thresholding). The released code takes the min-max steps
      over the whole batch; here they are per image, so a map does not depend on its batch-mates (the last per-image
      min-max makes the two agree except at the zero-padded border).

    The mean filter pads with zeros in both settings, like the authors' ``nn.Conv2d(1, 1, 3, padding=1)``.

    Args:
        attr (Tensor): ``[B, C, H, W]`` attribution (e.g. ``attribution.attribute(..., method="saliency")``), or
            an already reduced ``[B, H, W]`` map (taken as ``mean_c |a_c|``).
        setting (str): ``"paper"`` (default) or ``"official"``.
        kernel_size (int): side of the mean filter. Default 3.
        sigma (float): Gaussian sigma of the official setting. Default 3.0.

    Returns:
        Tensor ``[B, H, W]`` with values in ``[0, 1]`` (same dtype and device as ``attr``); all zeros for a zero
        attribution.

    Example::

        >>> g = attribution.attribute(model, x, target=y, method="saliency")
        >>> heat = wsol.postprocess_heatmap(g)            # [B, H, W]
        >>> boxes = wsol.box_from_heatmap(heat, 0.2)      # [B, 4]
    """
    _check_setting(setting)
    if not isinstance(attr, torch.Tensor) or attr.dim() not in (3, 4) or not attr.is_floating_point():
        raise ValueError(f"attr must be a float tensor [B, C, H, W] (or [B, H, W]), got "
                         f"{tuple(attr.shape) if isinstance(attr, torch.Tensor) else type(attr).__name__}")
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int, got {kernel_size!r}")
    m = attr.detach().abs()
    m = m.mean(1) if m.dim() == 4 else m
    if setting == "paper":
        return _mean3x3(normalize_map(m), kernel_size).clamp(0, 1)
    B, H, W = m.shape
    flat = m.reshape(B, -1)
    std = flat.std(dim=1, keepdim=True) if flat.shape[1] > 1 else torch.ones_like(flat[:, :1])
    z = (flat - flat.mean(dim=1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
    q = torch.from_numpy(np.percentile(z.cpu().double().numpy(), [2, 98], axis=1)).to(z)  # numpy's linear rule
    z = torch.maximum(torch.minimum(z, q[1].unsqueeze(1)), q[0].unsqueeze(1)).reshape(B, H, W)
    z = _mean3x3(normalize_map(z), kernel_size)
    from scipy.ndimage import gaussian_filter
    g = gaussian_filter(z.cpu().double().numpy(), sigma=(0, sigma, sigma), mode="reflect", truncate=4.0)
    return normalize_map(torch.from_numpy(g).to(device=m.device, dtype=m.dtype))


def cam_heatmap(cam: torch.Tensor) -> torch.Tensor:
    """CAM / Grad-CAM map (``attribution.attribute(..., method="cam" | "gradcam")``, ``[B, C, H, W]`` repeated over
    channels, or ``[B, H, W]``) -> min-max normalised ``[B, H, W]`` in ``[0, 1]`` (wsolevaluation / ADL; the
    Table 2 "CAM" columns). No ReLU on CAM (as in CAM and ADL); constant maps become zeros.

    Note: artlib upsamples the feature-resolution map bilinearly (captum); ADL / wsolevaluation use bicubic
    ``cv2.resize``.
    """
    if not isinstance(cam, torch.Tensor) or cam.dim() not in (3, 4) or not cam.is_floating_point():
        raise ValueError(f"cam must be a float tensor [B, C, H, W] or [B, H, W], got "
                         f"{tuple(cam.shape) if isinstance(cam, torch.Tensor) else type(cam).__name__}")
    return normalize_map((cam[:, 0] if cam.dim() == 4 else cam).detach())


def localization_map(model: nn.Module, x: torch.Tensor, target, method: str = "grad",
                     setting: str = "paper") -> torch.Tensor:
    r"""Localisation heatmap ``[B, H, W]`` in ``[0, 1]`` of ``model`` on images ``x`` for class ``target``.

    * ``"grad"``: ART Sec. 4.2. ``setting="paper"``: the input gradient of the ``target`` logit,
      ``\nabla_x f(x)_{target}``; ``"official"``: the input gradient of the cross-entropy loss
      ``CE(f(x), target)`` (the released code uses the predicted class as target). Post-processed by
      :func:`postprocess_heatmap` with the same ``setting``.
    * ``"cam"``: CAM (Zhou et al. 2016) of ``target`` (Table 2's CAM columns); ``"gradcam"``: Grad-CAM. Both via
      :func:`artlib.attribution.attribute`, then :func:`cam_heatmap`.

    The model is evaluated in eval mode and its ``training`` flag restored; parameters' ``requires_grad`` untouched.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images returning logits.
        x (Tensor): ``[B, C, H, W]`` images.
        target (int or Tensor[B]): class per image (true label for GT-known, prediction for the official setting).
        method (str): one of :data:`MAP_METHODS`. Default ``"grad"``.
        setting (str): ``"paper"`` (default) or ``"official"``.

    Returns:
        Tensor ``[B, H, W]`` in ``[0, 1]``.
    """
    from artlib import attribution
    _check_setting(setting)
    if method not in MAP_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(MAP_METHODS)}")
    if method in ("cam", "gradcam"):
        return cam_heatmap(attribution.attribute(model, x, target, method=method))
    if setting == "paper":
        return postprocess_heatmap(attribution.attribute(model, x, target, method="saliency"), "paper")
    attribution._check_x(x)
    tgt = attribution._target_tensor(target, x)
    with _eval_mode(model), torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xx), tgt, reduction="sum"), xx)
    return postprocess_heatmap(g, "official")


# --------------------------------------------------------------------------------------------------- boxes
def _cubehelix_gray_lut() -> np.ndarray:
    """uint8 gray value of each of matplotlib's 256 cubehelix colours, as ``cv2.cvtColor(RGB2GRAY)`` computes it
    on the ``astype('uint8')`` RGB (fixed point: ``(4899 R + 9617 G + 1868 B + 8192) >> 14``)."""
    import matplotlib
    rgb = (matplotlib.colormaps["cubehelix"](np.arange(256))[:, :3].astype(np.float32) * 255.0).astype(np.uint8)
    rgb = rgb.astype(np.int64)
    return ((4899 * rgb[:, 0] + 9617 * rgb[:, 1] + 1868 * rgb[:, 2] + 8192) >> 14).astype(np.uint8)


_GRAY_LUT = None


def _official_gray(maps: np.ndarray) -> np.ndarray:
    """``[B, H, W]`` float maps -> uint8 gray maps of the ART code's ``intensity_to_rgb(normalize=True)`` +
    ``cvtColor(RGB2GRAY)`` (per-map min-max, 256-colour cubehelix lookup as matplotlib indexes it)."""
    global _GRAY_LUT
    if _GRAY_LUT is None:
        _GRAY_LUT = _cubehelix_gray_lut()
    m = normalize_map(torch.from_numpy(maps)).numpy()
    idx = np.clip((m * 256).astype(np.int64), 0, 255)
    return _GRAY_LUT[idx]


def _largest_components(mask: np.ndarray):
    """Label the 8-connected components of ``[B, H, W]`` bool masks and pick each image's largest (by pixel count;
    ties go to the component met first in raster order).

    One ``scipy.ndimage.label`` call labels the whole batch as a volume whose structuring element does not connect
    neighbouring images. Returns ``(labels, chosen [B] (0 = no component), objects)`` with ``objects`` the
    ``find_objects`` bounding slices ``(batch, y, x)`` of labels ``1..n``.
    """
    from scipy import ndimage
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connectivity within an image, none across the batch axis
    labels, n = ndimage.label(mask, structure=structure)
    chosen = np.zeros(mask.shape[0], dtype=np.int64)
    if n == 0:
        return labels, chosen, []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    objects = ndimage.find_objects(labels)
    batch = np.fromiter((sl[0].start for sl in objects), dtype=np.int64, count=n)
    order = np.lexsort((np.arange(n), -sizes, batch))       # by image, then larger first, then lower label
    keep = order[np.r_[True, batch[order][1:] != batch[order][:-1]]]
    chosen[batch[keep]] = keep + 1
    return labels, chosen, objects


def _largest_component_boxes(mask: np.ndarray, empty: Sequence[float]) -> np.ndarray:
    """Bounding boxes (inclusive corners) of the largest 8-connected component of each ``[B, H, W]`` bool mask;
    ``empty`` where a mask has no foreground."""
    out = np.tile(np.asarray(empty, dtype=np.float64), (mask.shape[0], 1))
    _, chosen, objects = _largest_components(mask)
    for i in np.flatnonzero(chosen):
        sl = objects[chosen[i] - 1]
        out[i] = (sl[2].start, sl[1].start, sl[2].stop - 1, sl[1].stop - 1)
    return out


def box_from_heatmap(heatmap, threshold: float = 0.2, setting: str = "paper") -> torch.Tensor:
    r"""Fit one box per heatmap the CAM / ADL way: threshold, largest connected component, bounding rectangle.

    Rule (CAM, Zhou et al. CVPR 2016 Sec. 3: "we first segment the regions of which the value is above 20% of the
    max value of the CAM. Then we take the bounding box that covers the largest connected component"):

    1. foreground = pixels **strictly above** ``threshold * max(map)`` (per map). ``setting="official"`` does it as
       the ART / ADL code: on the uint8 gray image of the min-max normalised map coloured with cubehelix,
       ``gray > int(threshold * max(gray))`` (``cv2.threshold(..., THRESH_BINARY)``).
    2. the largest 8-connected foreground component by **pixel count** (``scipy.ndimage.label``; OpenCV's
       ``findContours`` + ``contourArea`` ranks by the polygon area of the outline instead, which can differ for
       thin shapes; ties go to the first component in raster order);
    3. its bounding rectangle, as inclusive pixel corners ``(x0, y0, x1, y1)``.

    A map with no foreground (e.g. all zeros, or ``threshold=1`` on the float map) gives ``(0, 0, 0, 0)`` (the
    paper setting, as wsolevaluation) or ``(0, 0, 1, 1)`` (official: the ART code's fallback).

    Args:
        heatmap (Tensor or ndarray): ``[B, H, W]`` or ``[H, W]`` non-NaN maps (any range; only ``> t * max``
            matters, so use min-max normalised maps such as :func:`postprocess_heatmap` output).
        threshold (float): fraction of the maximum in ``[0, 1]``. Default 0.2 (the ART code's gradient threshold;
            see :data:`DEFAULT_THRESHOLDS`).
        setting (str): ``"paper"`` (default) or ``"official"``.

    Returns:
        float32 Tensor ``[B, 4]`` (or ``[4]`` for a single ``[H, W]`` map) on the heatmap's device.

    Example::

        >>> h = torch.zeros(8, 10); h[2:5, 1:4] = 1; h[6, 8] = 1   # a 3x3 blob and a lone pixel
        >>> box_from_heatmap(h, 0.5)
        tensor([1., 2., 3., 4.])
    """
    _check_setting(setting)
    t = _check_fraction(threshold)
    maps, batched = _maps(heatmap)
    device = maps.device
    arr = maps.detach().cpu().double().numpy()
    if setting == "paper":
        peak = arr.reshape(arr.shape[0], -1).max(axis=1) if arr.size else np.zeros(arr.shape[0])
        mask = arr > (t * peak)[:, None, None]
        empty = (0, 0, 0, 0)
    else:
        gray = _official_gray(arr)
        cut = np.floor(t * gray.reshape(gray.shape[0], -1).max(axis=1).astype(np.float64))
        mask = gray > cut[:, None, None]
        empty = (0, 0, 1, 1)
    out = torch.from_numpy(_largest_component_boxes(mask, empty)).to(device=device, dtype=torch.float32)
    return out if batched else out[0]


# ------------------------------------------------------------------------------------------------- metrics
def iou(box_a: BoxLike, box_b: BoxLike) -> torch.Tensor:
    r"""Intersection over union of boxes ``(x0, y0, x1, y1)`` with **inclusive** pixel corners, broadcasting over
    leading dimensions.

    ``area(b) = max(x1 - x0 + 1, 0) * max(y1 - y0 + 1, 0)``; the intersection width and height are clamped at 0
    (the ART / ADL ``calculate_IOU`` does not clamp, so there two disjoint boxes can score a positive IoU). Two
    empty boxes give 0.

    Args:
        box_a, box_b (Tensor, ndarray or sequence): ``[..., 4]``, broadcastable against each other.

    Returns:
        float Tensor of the broadcast leading shape (float64 if either input is float64, else float32).

    Example::

        >>> iou(torch.tensor([0., 0, 9, 9]), torch.tensor([[5., 0, 14, 9], [20., 20, 29, 29]]))
        tensor([0.3333, 0.0000])
    """
    a, b = _boxes(box_a, "box_a"), _boxes(box_b, "box_b")
    dtype = torch.float64 if torch.float64 in (a.dtype, b.dtype) else torch.float32
    a, b = a.to(dtype), b.to(device=a.device, dtype=dtype)
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"box_a {tuple(a.shape)} and box_b {tuple(b.shape)} do not broadcast") from None
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + 1).clamp_min(0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + 1).clamp_min(0)
    inter = iw * ih
    area = lambda t: (t[..., 2] - t[..., 0] + 1).clamp_min(0) * (t[..., 3] - t[..., 1] + 1).clamp_min(0)  # noqa
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)),
                       torch.zeros_like(union))


def _correct(pred, labels) -> torch.Tensor:
    from artlib import metrics
    return metrics.correct(pred, labels)


def gt_known_loc(pred_boxes: BoxLike, gt_boxes: BoxLike, iou_threshold: float = 0.5,
                 reduction: str = "mean") -> torch.Tensor:
    """GT-known localisation (ART Sec. 4.2, ADL): an image counts when ``IoU(pred, gt) >= iou_threshold`` (0.5),
    whatever the predicted class (the box comes from the map of the known class).

    Args:
        pred_boxes, gt_boxes: ``[B, 4]`` inclusive-corner boxes.
        iou_threshold (float): default 0.5.
        reduction (str): ``"mean"`` (fraction, 0-d float tensor) or ``"none"`` (bool ``[B]``).

    Example::

        >>> gt_known_loc(torch.tensor([[0., 0, 9, 9]]), torch.tensor([[0., 0, 9, 8]]))
        tensor(1.)
    """
    t = _check_fraction(iou_threshold, "iou_threshold")
    return _reduce(iou(pred_boxes, gt_boxes) >= t, reduction)


def top1_loc(pred_boxes: BoxLike, gt_boxes: BoxLike, logits: torch.Tensor, labels: torch.Tensor,
             iou_threshold: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """Top-1 localisation (ART Sec. 4.2, ADL): the top-1 prediction is correct **and** ``IoU >= iou_threshold``.

    Args:
        pred_boxes, gt_boxes: ``[B, 4]``. logits: ``[B, K]`` logits or ``[B]`` predicted labels. labels: ``[B]``.
        iou_threshold (float): default 0.5. reduction (str): ``"mean"`` or ``"none"``.
    """
    hits = gt_known_loc(pred_boxes, gt_boxes, iou_threshold, reduction="none")
    ok = _correct(logits, labels).to(hits.device)
    if ok.shape != hits.shape:
        raise ValueError(f"{ok.shape[0]} predictions for {hits.shape} boxes")
    return _reduce(hits & ok, reduction)


def top1_acc(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Top-1 classification accuracy (Table 2's last column), a 0-d float tensor; ``logits`` ``[B, K]`` or labels."""
    return _reduce(_correct(logits, labels), "mean")


def mask_from_box(boxes: BoxLike, size) -> torch.Tensor:
    """Boolean masks ``[B, H, W]`` that are True inside each inclusive-corner box (clipped to the image).

    Args:
        boxes: ``[B, 4]`` (or ``[4]`` -> ``[H, W]``). size: ``(H, W)`` or an int for a square.

    Example::

        >>> mask_from_box(torch.tensor([1., 0, 2, 1]), (3, 4)).int()
        tensor([[0, 1, 1, 0],
                [0, 1, 1, 0],
                [0, 0, 0, 0]], dtype=torch.int32)
    """
    b = _boxes(boxes, "boxes")
    if b.dim() not in (1, 2):
        raise ValueError(f"boxes must be [B, 4] or [4], got {tuple(b.shape)}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise ValueError(f"size must be a positive int or (H, W) of positive ints, got {size!r}")
    bb = b.reshape(-1, 4)
    ys = torch.arange(h, device=b.device, dtype=b.dtype).view(1, h, 1)
    xs = torch.arange(w, device=b.device, dtype=b.dtype).view(1, 1, w)
    m = ((xs >= bb[:, 0, None, None]) & (xs <= bb[:, 2, None, None]) &
         (ys >= bb[:, 1, None, None]) & (ys <= bb[:, 3, None, None]))
    return m if b.dim() == 2 else m[0]


def mask_from_heatmap(heatmap, threshold: float = 0.2, largest_component: bool = False) -> torch.Tensor:
    """Segmentation mask from a heatmap (ART Fig. 7): pixels strictly above ``threshold * max`` of each map;
    with ``largest_component=True`` only the largest 8-connected component (as for boxes).

    Args:
        heatmap: ``[B, H, W]`` or ``[H, W]``. threshold (float): fraction of the maximum, default 0.2 (the paper
            gives no value for Fig. 7; :func:`artlib.wsol.mask_iou` sweeps help choose it).
        largest_component (bool): default False.

    Returns:
        bool Tensor shaped like ``heatmap``. An all-zero map gives an empty mask.
    """
    t = _check_fraction(threshold)
    maps, batched = _maps(heatmap)
    peak = maps.flatten(1).amax(1).view(-1, 1, 1)
    m = maps > t * peak
    if largest_component and bool(m.any()):
        labels, chosen, _ = _largest_components(m.cpu().numpy())
        m = torch.from_numpy((labels == chosen[:, None, None]) & (labels > 0)).to(maps.device)
    return m if batched else m[0]


def mask_iou(mask_a, mask_b) -> torch.Tensor:
    """IoU of boolean masks ``[..., H, W]`` (broadcasting) -> float ``[...]``; two empty masks give 0.

    Example::

        >>> a = torch.zeros(4, 4, dtype=torch.bool); a[:2] = True
        >>> mask_iou(a, torch.ones(4, 4, dtype=torch.bool))
        tensor(0.5000)
    """
    ts = []
    for name, m in (("mask_a", mask_a), ("mask_b", mask_b)):
        t = m if isinstance(m, torch.Tensor) else torch.as_tensor(np.asarray(m))
        if t.dim() < 2:
            raise ValueError(f"{name} must be a mask [..., H, W], got shape {tuple(t.shape)}")
        if t.dtype != torch.bool:
            if t.is_floating_point() or t.is_complex():
                raise ValueError(f"{name} must be boolean (or 0/1 integers), got dtype {t.dtype}")
            t = t != 0
        ts.append(t)
    a, b = ts[0], ts[1].to(ts[0].device)
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"mask sizes differ: {tuple(a.shape[-2:])} vs {tuple(b.shape[-2:])}")
    inter = (a & b).flatten(-2).sum(-1).float()
    union = (a | b).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def top1_seg(pred_masks, gt_masks, logits: torch.Tensor, labels: torch.Tensor, iou_threshold: float = 0.5,
             reduction: str = "mean") -> torch.Tensor:
    """Top-1 Seg (ART Sec. 4.2, Fig. 7): the prediction is correct **and** ``mask IoU >= iou_threshold`` (0.5).

    Args:
        pred_masks, gt_masks: ``[B, H, W]`` boolean. logits: ``[B, K]`` or ``[B]`` predicted labels. labels: ``[B]``.
        reduction (str): ``"mean"`` (0-d float) or ``"none"`` (bool ``[B]``).
    """
    t = _check_fraction(iou_threshold, "iou_threshold")
    hits = mask_iou(pred_masks, gt_masks) >= t
    ok = _correct(logits, labels).to(hits.device)
    if ok.shape != hits.shape:
        raise ValueError(f"{ok.shape[0]} predictions for {tuple(hits.shape)} masks")
    return _reduce(hits & ok, reduction)


# ----------------------------------------------------------------------------------------- threshold sweep
class ThresholdSweep:
    """Accumulates GT-known / Top-1 localisation hits for a grid of box thresholds, batch by batch.

    The clovaai/wsolevaluation protocol (Choe et al., CVPR 2020): for every threshold ``t`` of the grid, boxes are
    fitted with :func:`box_from_heatmap` and an image is a hit when ``IoU >= iou_threshold``; the reported number
    (MaxBoxAcc, CVPR version: largest component, IoU 0.5) is the best dataset-level accuracy over the grid — one
    threshold for the whole split. wsolevaluation's grid is ``np.arange(0, 1, 0.001)``; the default here is
    ``np.arange(0, 1, 0.01)`` (pass a finer grid to match it).

    Example::

        >>> sweep = ThresholdSweep()
        >>> for heat, boxes, ok in batches:
        ...     sweep.update(heat, boxes, correct=ok)
        >>> sweep.result()["best_threshold"]
    """

    def __init__(self, thresholds: Optional[Sequence[float]] = None, iou_threshold: float = 0.5,
                 setting: str = "paper"):
        _check_setting(setting)
        grid = np.arange(0.0, 1.0, 0.01) if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
        if grid.size == 0:
            raise ValueError("thresholds must not be empty")
        for t in grid:
            _check_fraction(float(t), "each threshold")
        self.thresholds = np.round(grid, 10)
        self.iou_threshold = _check_fraction(iou_threshold, "iou_threshold")
        self.setting = setting
        self.gt_known_hits = np.zeros(grid.size, dtype=np.int64)
        self.top1_hits = np.zeros(grid.size, dtype=np.int64)
        self.n = 0
        self.has_correct = None

    def update(self, heatmaps, gt_boxes: BoxLike, correct: Optional[torch.Tensor] = None) -> "ThresholdSweep":
        """Add a batch: ``heatmaps`` ``[B, H, W]``, ``gt_boxes`` ``[B, 4]``, optional ``correct`` bool ``[B]``
        (top-1 prediction correct) for Top-1 Loc."""
        maps, _ = _maps(heatmaps, "heatmaps")
        gt = _boxes(gt_boxes, "gt_boxes").reshape(-1, 4).cpu()
        if gt.shape[0] != maps.shape[0]:
            raise ValueError(f"{maps.shape[0]} heatmaps but {gt.shape[0]} gt boxes")
        if self.has_correct is None:
            self.has_correct = correct is not None
        elif self.has_correct != (correct is not None):
            raise ValueError("pass `correct` with every batch or with none")
        ok = None
        if correct is not None:
            ok = torch.as_tensor(correct).reshape(-1).bool().cpu()
            if ok.shape[0] != maps.shape[0]:
                raise ValueError(f"{maps.shape[0]} heatmaps but {ok.shape[0]} correct flags")
        for k, t in enumerate(self.thresholds):
            hit = iou(box_from_heatmap(maps, float(t), self.setting).cpu(), gt) >= self.iou_threshold
            self.gt_known_hits[k] += int(hit.sum())
            if ok is not None:
                self.top1_hits[k] += int((hit & ok).sum())
        self.n += maps.shape[0]
        return self

    def result(self) -> dict:
        """``thresholds`` [T], ``gt_known_loc`` [T] and ``top1_loc`` [T] (fractions; None without ``correct``),
        ``best_threshold`` (first argmax of GT-known), ``best_gt_known_loc`` (MaxBoxAcc) and ``top1_loc_at_best``
        (Top-1 Loc at that threshold), ``n``."""
        if self.n == 0:
            raise ValueError("no images were added to the sweep")
        gk = self.gt_known_hits / self.n
        t1 = self.top1_hits / self.n if self.has_correct else None
        best = int(np.argmax(gk))
        return dict(thresholds=self.thresholds.copy(), gt_known_loc=gk, top1_loc=t1,
                    best_threshold=float(self.thresholds[best]), best_gt_known_loc=float(gk[best]),
                    top1_loc_at_best=None if t1 is None else float(t1[best]), n=self.n)


def threshold_sweep(heatmaps, gt_boxes: BoxLike, thresholds: Optional[Sequence[float]] = None,
                    iou_threshold: float = 0.5, correct: Optional[torch.Tensor] = None,
                    setting: str = "paper") -> dict:
    """GT-known (and Top-1) localisation for every threshold of a grid, and the best threshold
    (clovaai/wsolevaluation MaxBoxAcc); see :class:`ThresholdSweep` for the protocol and the returned keys.

    Example::

        >>> res = threshold_sweep(heat, gt_boxes, thresholds=[0.1, 0.2, 0.3])
        >>> res["gt_known_loc"], res["best_threshold"]
    """
    return ThresholdSweep(thresholds, iou_threshold, setting).update(heatmaps, gt_boxes, correct).result()


# ----------------------------------------------------------------------------------------------- evaluation
def evaluate_localization(model: nn.Module, dataset, method: str = "grad", setting: str = "paper",
                          threshold: Optional[float] = None, thresholds: Optional[Sequence[float]] = None,
                          target: Optional[str] = None, batch_size: int = 16, keep: int = 0,
                          iou_threshold: float = 0.5, device=None, progress: bool = True) -> dict:
    """Table 2 metrics of ``model`` on a dataset of ``(image, label, box)`` items (``load_dataset("cub200", ...)``).

    For each batch: logits (Top-1 Acc), a heatmap from :func:`localization_map` for the class chosen by
    ``target``, a box at ``threshold`` (GT-known / Top-1 Loc) and, over ``thresholds``, the wsolevaluation sweep.

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images. Its ``training`` flag is restored.
        dataset: items ``(image [C, H, W], label, box [4])``.
        method (str): ``"grad"``, ``"cam"`` or ``"gradcam"``.
        setting (str): ``"paper"`` or ``"official"`` (map, box rule, see the module docstring).
        threshold (float, optional): box threshold; default :data:`DEFAULT_THRESHOLDS` ``[method]``.
        thresholds (sequence, optional): sweep grid; default ``np.arange(0, 1, 0.05)`` (the ART code's
            ``cam_curve`` grid). Pass ``()`` to skip the sweep.
        target (str, optional): ``"label"`` (the ground-truth class: GT-known) or ``"pred"`` (the predicted class).
            Default ``"label"`` for the paper setting, ``"pred"`` for grad maps in the official setting (as the
            released code; its CAM uses the label).
        batch_size (int): default 16. keep (int): also return the first ``keep`` images, heatmaps and boxes (for
            figures). iou_threshold (float): default 0.5. device: where to run (default: the model's device).
        progress (bool): tqdm bar.

    Returns:
        dict with ``top1_acc``, ``gt_known_loc``, ``top1_loc`` (fractions at ``threshold``), ``threshold``,
        ``mean_iou``, ``n``, the sweep's ``thresholds`` / ``sweep_gt_known_loc`` / ``sweep_top1_loc`` /
        ``best_threshold`` / ``best_gt_known_loc`` / ``top1_loc_at_best`` (absent when skipped), per-image
        ``ious`` [N], ``correct`` [N], ``pred_boxes`` [N, 4], ``gt_boxes`` [N, 4], and with ``keep``: ``images``,
        ``heatmaps``, ``labels``, ``preds``.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    _check_setting(setting)
    if method not in MAP_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(MAP_METHODS)}")
    thr = DEFAULT_THRESHOLDS[method] if threshold is None else _check_fraction(threshold)
    if target is None:
        target = "pred" if (setting == "official" and method == "grad") else "label"
    if target not in ("label", "pred"):
        raise ValueError(f"unknown target {target!r}; choose 'label' or 'pred'")
    grid = np.arange(0.0, 1.0, 0.05) if thresholds is None else thresholds
    sweep = ThresholdSweep(grid, iou_threshold, setting) if len(grid) else None
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    ious, oks, pboxes, gboxes, kept = [], [], [], [], {"images": [], "heatmaps": [], "labels": [], "preds": []}
    n_kept = 0
    with _eval_mode(model):
        for x, y, box in tqdm(loader, desc=f"wsol {method}", disable=not progress, leave=False):
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                pred = model(x).argmax(1)
            heat = localization_map(model, x, y if target == "label" else pred, method, setting)
            boxes = box_from_heatmap(heat, thr, setting).cpu()
            ok = (pred == y).cpu()
            ious.append(iou(boxes, box.float()))
            oks.append(ok)
            pboxes.append(boxes)
            gboxes.append(box.float())
            if sweep is not None:
                sweep.update(heat, box, correct=ok)
            if n_kept < keep:
                k = min(keep - n_kept, x.shape[0])
                for name, v in (("images", x), ("heatmaps", heat), ("labels", y), ("preds", pred)):
                    kept[name].append(v[:k].detach().cpu())
                n_kept += k
    if not ious:
        raise ValueError("the dataset is empty")
    ious_t, ok_t = torch.cat(ious), torch.cat(oks)
    hit = ious_t >= iou_threshold
    out = dict(top1_acc=float(ok_t.float().mean()), gt_known_loc=float(hit.float().mean()),
               top1_loc=float((hit & ok_t).float().mean()), threshold=thr, mean_iou=float(ious_t.mean()),
               n=int(ious_t.numel()), ious=ious_t, correct=ok_t, pred_boxes=torch.cat(pboxes),
               gt_boxes=torch.cat(gboxes), method=method, setting=setting, target=target)
    if sweep is not None:
        r = sweep.result()
        out.update(thresholds=r["thresholds"], sweep_gt_known_loc=r["gt_known_loc"], sweep_top1_loc=r["top1_loc"],
                   best_threshold=r["best_threshold"], best_gt_known_loc=r["best_gt_known_loc"],
                   top1_loc_at_best=r["top1_loc_at_best"])
    if keep:
        out.update({k: torch.cat(v) for k, v in kept.items()})
    return out


# ----------------------------------------------------------------------------------------------- segmentation
#: Attribution maps of ART Fig. 7 (Sec. 5 "Image Segmentation"): Integrated Gradients and the input gradient.
SEG_METHODS = ("ig", "grad")


def segmentation_map(model: nn.Module, x: torch.Tensor, target, method: str = "ig", n_steps: int = 50,
                     ig_method: str = "gausslegendre") -> torch.Tensor:
    r"""Segmentation heatmap ``[B, H, W]`` in ``[0, 1]`` of ART Fig. 7 (Sec. 5): "Attribution maps are converted
    into gray-scale heatmaps and a smoothing filter is applied as a post-processing step".

    * ``"ig"``: Integrated Gradients of the ``target`` logit (zero baseline, ``n_steps`` points,
      :func:`artlib.attribution.attribute`); ``"grad"``: the input gradient ``\nabla_x f(x)_{target}`` ("gradient
      [56]").

    Both go through :func:`postprocess_heatmap` (``"paper"``: channel mean of ``|a|``, min-max, 3x3 mean filter),
    the same post-processing as the WSOL boxes of Sec. 4.2 (the paper names no other filter for Fig. 7).

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images (its ``training`` flag is restored).
        x (Tensor): ``[B, C, H, W]``. target (int or Tensor[B]): class per image.
        method (str): one of :data:`SEG_METHODS`. Default ``"ig"``.
        n_steps (int): IG points. Default 50. ig_method (str): IG quadrature rule. Default ``"gausslegendre"``.

    Returns:
        Tensor ``[B, H, W]`` in ``[0, 1]``.

    Example::

        >>> heat = wsol.segmentation_map(model, x, y, method="ig", n_steps=20)
        >>> masks = wsol.mask_from_heatmap(heat, 0.2)
    """
    from artlib import attribution
    if method not in SEG_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(SEG_METHODS)}")
    if method == "ig":
        attr = attribution.attribute(model, x, target, method="ig", n_steps=n_steps, ig_method=ig_method)
    else:
        attr = attribution.attribute(model, x, target, method="saliency")
    return postprocess_heatmap(attr, "paper")


class BoxMasks(torch.utils.data.Dataset):
    """A CUB-style dataset of ``(image, label, box)`` seen as ``(image, label, mask)`` with the box filled in
    (:func:`mask_from_box`): a stand-in segmentation ground truth where no masks exist (the smoke profile of the
    Fig. 7 notebook: CUB boxes instead of the Flowers-17 trimaps). Not the paper's protocol: a box mask also covers
    background around the object."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.targets = getattr(dataset, "targets", None)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        x, y, box = self.dataset[i]
        return x, y, mask_from_box(torch.as_tensor(box, dtype=torch.float32), tuple(x.shape[-2:]))


def box_masks(dataset) -> BoxMasks:
    """``(image, label, box)`` items -> ``(image, label, box mask)``; see :class:`BoxMasks`.

    Example::

        >>> seg = box_masks(data.load_dataset("cub200", "test"))
        >>> x, y, mask = seg[0]; mask.dtype
        torch.bool
    """
    return BoxMasks(dataset)


def _mask_sweep(heat: torch.Tensor, gt: torch.Tensor, thresholds: np.ndarray,
                largest_component: bool) -> torch.Tensor:
    """Mask IoU ``[T, B]`` of ``mask_from_heatmap(heat, t)`` against ``gt`` for every threshold ``t``."""
    if not largest_component:  # one broadcast comparison over the grid
        peak = heat.flatten(1).amax(1).view(1, -1, 1, 1)
        t = torch.as_tensor(thresholds, dtype=heat.dtype, device=heat.device).view(-1, 1, 1, 1)
        return mask_iou(heat.unsqueeze(0) > t * peak, gt.unsqueeze(0))
    return torch.stack([mask_iou(mask_from_heatmap(heat, float(t), True), gt) for t in thresholds])


def evaluate_segmentation(model: nn.Module, dataset, method: str = "ig", threshold: float = 0.2,
                          thresholds: Optional[Sequence[float]] = None, n_steps: int = 50,
                          largest_component: bool = False, batch_size: int = 16, keep: int = 0,
                          iou_threshold: float = 0.5, device=None, progress: bool = True) -> dict:
    """Top-1 Seg of ART Fig. 7 (Sec. 5) of ``model`` on a dataset of ``(image, label, mask)`` items
    (:func:`load_flowers17_trimaps`, or :func:`box_masks` of a CUB split).

    For each batch: logits (Top-1 Acc), the :func:`segmentation_map` of the ground-truth class, the mask
    ``heat > threshold * max`` (:func:`mask_from_heatmap`), its IoU with the ground-truth mask; Top-1 Seg = correct
    prediction and mask IoU >= ``iou_threshold`` (0.5). The paper states no mask threshold: ``threshold`` defaults
    to 0.2 (the released code's box threshold for gradient maps) and the sweep over ``thresholds`` reports the best
    one for the whole split as well (as :class:`ThresholdSweep` does for boxes).

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images (its ``training`` flag is restored).
        dataset: items ``(image [C, H, W], label, mask [H, W] bool)``.
        method (str): ``"ig"`` or ``"grad"`` (:data:`SEG_METHODS`). threshold (float): mask threshold, default 0.2.
        thresholds (sequence, optional): sweep grid, default ``np.arange(0, 1, 0.05)``; ``()`` skips the sweep.
        n_steps (int): IG points, default 50. largest_component (bool): keep only the largest 8-connected component
            of each mask (default False: the whole thresholded map).
        batch_size (int): default 16. keep (int): also return the first ``keep`` images, heatmaps and masks.
        iou_threshold (float): default 0.5. device: default the model's. progress (bool): tqdm bar.

    Returns:
        dict with ``top1_acc``, ``top1_seg``, ``mean_iou`` (at ``threshold``), ``threshold``, ``n``, per-image
        ``ious`` [N] and ``correct`` [N]; the sweep's ``thresholds``, ``sweep_top1_seg`` [T], ``sweep_mean_iou`` [T],
        ``best_threshold`` (first argmax of Top-1 Seg), ``best_top1_seg``, ``mean_iou_at_best``; with ``keep``:
        ``images``, ``heatmaps``, ``masks``, ``gt_masks``, ``labels``, ``preds``.

    Example::

        >>> res = evaluate_segmentation(model, load_flowers17_trimaps(), method="ig")
        >>> res["top1_seg"], res["best_threshold"]
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    if method not in SEG_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(SEG_METHODS)}")
    thr = _check_fraction(threshold)
    iou_t = _check_fraction(iou_threshold, "iou_threshold")
    grid = np.round(np.arange(0.0, 1.0, 0.05) if thresholds is None else
                    np.asarray(thresholds, dtype=np.float64).ravel(), 10)
    for t in grid:
        _check_fraction(float(t), "each threshold")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    ious, oks, sweeps = [], [], []
    kept = {k: [] for k in ("images", "heatmaps", "masks", "gt_masks", "labels", "preds")}
    n_kept = 0
    with _eval_mode(model):
        for x, y, gt in tqdm(loader, desc=f"seg {method}", disable=not progress, leave=False):
            x, y, gt = x.to(device), torch.as_tensor(y).to(device), torch.as_tensor(gt).to(device).bool()
            if gt.shape != (x.shape[0],) + tuple(x.shape[-2:]):
                raise ValueError(f"masks {tuple(gt.shape)} do not match images {tuple(x.shape)}")
            with torch.no_grad():
                pred = model(x).argmax(1)
            heat = segmentation_map(model, x, y, method, n_steps=n_steps)
            masks = mask_from_heatmap(heat, thr, largest_component)
            ious.append(mask_iou(masks, gt).cpu())
            oks.append((pred == y).cpu())
            if grid.size:
                sweeps.append(_mask_sweep(heat, gt, grid, largest_component).cpu())
            if n_kept < keep:
                k = min(keep - n_kept, x.shape[0])
                for name, v in (("images", x), ("heatmaps", heat), ("masks", masks), ("gt_masks", gt),
                                ("labels", y), ("preds", pred)):
                    kept[name].append(v[:k].detach().cpu())
                n_kept += k
    if not ious:
        raise ValueError("the dataset is empty")
    ious_t, ok_t = torch.cat(ious), torch.cat(oks)
    out = dict(top1_acc=float(ok_t.float().mean()), top1_seg=float(((ious_t >= iou_t) & ok_t).float().mean()),
               mean_iou=float(ious_t.mean()), threshold=thr, n=int(ious_t.numel()), ious=ious_t, correct=ok_t,
               method=method)
    if grid.size:
        sw = torch.cat(sweeps, dim=1)                                       # [T, N]
        seg = ((sw >= iou_t) & ok_t.unsqueeze(0)).float().mean(1).numpy()
        best = int(np.argmax(seg))
        out.update(thresholds=grid, sweep_top1_seg=seg, sweep_mean_iou=sw.mean(1).numpy(),
                   best_threshold=float(grid[best]), best_top1_seg=float(seg[best]),
                   mean_iou_at_best=float(sw[best].mean()))
    if keep:
        out.update({k: torch.cat(v) for k, v in kept.items()})
    return out



def cub_model(profile: str = "smoke", method: str = "natural", arch: Optional[str] = None,
              pretrained: Optional[str] = None, progress: bool = False, **overrides):
    """A CUB-200 classifier of ART Table 2 / Fig. 7 from :func:`artlib.reproduce.get_model` (checkpoint cache).

    * ``profile="paper"``: ART B.1 (``train.config("paper", "cub200", method)``): ``arch`` ``"resnet50"``
      (default) or ``"vgg-gap"`` fine-tuned from ImageNet weights: torchvision's (the profile's
      ``pretrained="imagenet"``) or the local file ``pretrained`` (torchvision format); PGD-7 eps 2/255 step 0.5/255; ART eps 2/255, a = 3, step 1.5/255, channel means.
    * ``profile="smoke"`` / ``"reference"``: the reference zoo's CUB model (``train.reference_settings``: small-cnn
      at 64 px, eps 2/255, PGD-7 step 0.5/255, ART with channel means); one small backbone stands in for both
      Table 2 architectures.

    The notebooks 13 (Table 2) and 14 (Fig. 7) both call this, so they share one checkpoint per model.

    Args:
        profile (str): ``"smoke"``, ``"reference"`` or ``"paper"``. method (str): ``"natural"``, ``"pgd"`` or ``"art"`` (any
            :data:`artlib.train.METHODS`). arch (str, optional): overrides the profile's architecture.
        pretrained (str, optional): local ImageNet weights file (paper profile; None: torchvision's). progress (bool): tqdm while training.
        **overrides: further :class:`artlib.train.TrainConfig` fields.

    Returns:
        ``(model, result)`` as :func:`artlib.reproduce.get_model`; evaluate on
        ``data.load_dataset("cub200", "test", transform=train.input_transform(result.config, "test"))``.

    Example::

        >>> model, result = cub_model("smoke", "art")
        >>> result.config.image_size, result.config.eps * 255
        (64, 2.0)
    """
    from artlib import reproduce
    if profile not in ("smoke", "reference", "paper"):
        raise ValueError(f"unknown profile {profile!r}; choices: ['smoke', 'reference', 'paper']")
    base = dict(arch=arch, pretrained=pretrained)  # smoke / reference: the zoo's (train.reference_settings: 64 px)
    base.update(overrides)
    return reproduce.get_model(profile, "cub200", method, progress=progress, **base)


def cub_test_set(config, subset=None, root=None, in_memory: bool = False):
    """The CUB-200 test split at the input size a model was trained with (``train.input_transform(config,
    "test")``: the 256 resize + 224 centre crop, or its ``image_size`` version), items ``(image, label, box)``.

    Args:
        config (TrainConfig): e.g. ``result.config`` of :func:`cub_model`. subset: as
            :func:`artlib.data.load_dataset`. root: data root (default ``config.data_root``, else ``$ARTLIB_DATA``).
        in_memory (bool): decode every image once and return a ``TensorDataset`` (kept for later calls with the same
            root, subset and transform): for small splits evaluated several times (smoke); the full split at 224 would
            take 3.5 GB. Default False.
    """
    from artlib import data, train
    root = data.resolve_root(root if root is not None else config.data_root)
    sub = tuple(subset) if isinstance(subset, (list, tuple)) else subset
    key = (str(root), sub, config.image_size, config.dataset)
    if in_memory and key in _TEST_SETS:
        return _TEST_SETS[key]
    ds = data.load_dataset("cub200", "test", root=root, subset=subset, transform=train.input_transform(config, "test"))
    if not in_memory:
        return ds
    items = [ds[i] for i in range(len(ds))]
    _TEST_SETS[key] = torch.utils.data.TensorDataset(torch.stack([it[0] for it in items]),
                                                     torch.tensor([int(it[1]) for it in items]),
                                                     torch.stack([it[2] for it in items]))
    return _TEST_SETS[key]


_TEST_SETS: dict = {}


# ----------------------------------------------------------------------------------- Flowers-17 trimaps
#: Foreground colour of the Flowers-17 trimaps (RGB). Pixels of any other colour (black background and the
#: other, boundary / unsure, colours) count as background.
TRIMAP_FOREGROUND = (128, 0, 0)


class Flowers17Trimaps(torch.utils.data.Dataset):
    """Flowers-17 segmentation ground truth (Nilsback & Zisserman, "Delving deeper into the whorl of flower
    segmentation", IVC 2010; ART Sec. 4.2 / Fig. 7), read from the official release.

    Official format (``trimaps.tgz`` from ``robots.ox.ac.uk/~vgg/data/flowers/17/``, extracted next to ``jpg/``)::

        <root>/flowers17/jpg/image_NNNN.jpg          the 17flowers.tgz images (class = (NNNN - 1) // 80)
        <root>/flowers17/trimaps/image_NNNN.png      one colour-coded trimap per segmented image (same size)
        <root>/flowers17/trimaps/imlist.mat          variable ``imlist``: the 1-based ids of the segmented images

    Trimap colours: foreground flower ``(128, 0, 0)`` (:data:`TRIMAP_FOREGROUND`); black is background, and the
    remaining colours (boundary / unsure regions) are treated as background, as public loaders of this release do.
    PNGs may be RGB, RGBA or palette images (read through ``convert("RGB")``).

    Items are ``(image [3, size, size] float in [0, 1], label, mask [size, size] bool)``: the image is resized
    bilinearly (antialiased, as ``data.default_transform("flowers17")``) and the mask with nearest neighbour.
    """

    def __init__(self, root=None, size: int = 128, ids: Optional[Sequence[int]] = None):
        from artlib import data
        self.root = data.resolve_root(root)
        base = self.root / "flowers17"
        self.jpg, self.trimaps = base / "jpg", base / "trimaps"
        imlist = self.trimaps / "imlist.mat"
        missing = [(p, w) for p, w in ((self.jpg, "17flowers.tgz, extracted"),
                                        (imlist, "trimaps.tgz, extracted into flowers17/"))
                   if not p.exists()]
        if missing:
            raise data.DatasetNotFoundError("flowers17 trimaps", self.root, missing,
                                            hint="Get trimaps.tgz from https://www.robots.ox.ac.uk/~vgg/data/"
                                                 "flowers/17/ and extract it into <root>/flowers17/")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        from scipy.io import loadmat
        mat = loadmat(imlist)
        keys = [k for k in mat if not k.startswith("__")]
        key = "imlist" if "imlist" in mat else (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise ValueError(f"{imlist}: expected a variable 'imlist', found {keys}")
        listed = sorted({int(v) for v in np.asarray(mat[key]).ravel()})
        if ids is not None:
            unknown = sorted(set(int(i) for i in ids) - set(listed))
            if unknown:
                raise ValueError(f"image ids {unknown[:5]} have no trimap (not in imlist.mat)")
            listed = sorted({int(i) for i in ids})
        absent = [i for i in listed if not (self.trimaps / f"image_{i:04d}.png").exists()
                  or not (self.jpg / f"image_{i:04d}.jpg").exists()]
        if absent:
            raise data.DatasetNotFoundError(
                "flowers17 trimaps", self.root,
                [(self.trimaps / f"image_{i:04d}.png", "listed in imlist.mat (with its jpg/ image)")
                 for i in absent[:3]])
        self.ids, self.size = listed, size
        self.targets = [(i - 1) // 80 for i in listed]

    def __len__(self):
        return len(self.ids)

    def load_mask(self, i: int) -> np.ndarray:
        """Foreground mask of item ``i`` at the trimap's own resolution, bool ``[H, W]``."""
        from PIL import Image
        with Image.open(self.trimaps / f"image_{self.ids[i]:04d}.png") as im:
            rgb = np.asarray(im.convert("RGB"))
        return np.all(rgb == np.asarray(TRIMAP_FOREGROUND, dtype=rgb.dtype), axis=-1)

    def __getitem__(self, i):
        from PIL import Image
        from artlib import data
        i = int(i) + (len(self) if int(i) < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} trimaps")
        with Image.open(self.jpg / f"image_{self.ids[i]:04d}.jpg") as im:
            img = im.convert("RGB")
        x = data.default_transform("flowers17")(img)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", antialias=True,
                              align_corners=False)[0].clamp(0, 1)
        m = Image.fromarray(self.load_mask(i)).resize((self.size, self.size), Image.NEAREST)
        return x, self.targets[i], torch.from_numpy(np.asarray(m, dtype=bool).copy())


def load_flowers17_trimaps(root=None, size: int = 128, ids: Optional[Sequence[int]] = None) -> Flowers17Trimaps:
    """The Flowers-17 trimaps (849 segmented images in the official release; ART Fig. 7) as a Dataset of
    ``(image, label, mask)``; see :class:`Flowers17Trimaps` for the on-disk format and the colour rule.

    Args:
        root: data root (default ``$ARTLIB_DATA``, else ``./data``). size (int): output side, default 128 (ART
            A.3.4). ids: restrict to these 1-based image ids (each must be in ``imlist.mat``).
    Raises:
        DatasetNotFoundError: the trimaps or images are missing (lists the paths and where to get them).
    Example::

        >>> seg = load_flowers17_trimaps()
        >>> x, y, mask = seg[0]; x.shape, mask.dtype
        (torch.Size([3, 128, 128]), torch.bool)
    """
    return Flowers17Trimaps(root, size=size, ids=ids)


# --------------------------------------------------------------------------------------------------- figures
def _overlay(ax, img: torch.Tensor, heat: Optional[torch.Tensor], alpha: float = 0.5):
    im = img.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
    ax.imshow(im.squeeze(-1) if im.shape[-1] == 1 else im, cmap="gray" if im.shape[-1] == 1 else None)
    if heat is not None:
        ax.imshow(heat.detach().cpu().float().numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def _rect(ax, box, color):
    from matplotlib.patches import Rectangle
    x0, y0, x1, y1 = [float(v) for v in box]
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor=color,
                           linewidth=1.5))


def plot_localization(images: torch.Tensor, heatmaps, gt_boxes: BoxLike, pred_boxes, titles=None,
                      size: float = 1.8):
    """ART Fig. 5 / Fig. 13 panels: each image with its heatmap overlaid, the ground-truth box in **red** and the
    estimated box in **green**.

    Args:
        images (Tensor): ``[N, C, H, W]`` in ``[0, 1]``.
        heatmaps: ``[N, H, W]`` maps in ``[0, 1]``, or a dict ``{row name: [N, H, W]}`` for several models (one
            row each, as Fig. 5's "ours" vs "ADL" rows).
        gt_boxes: ``[N, 4]``. pred_boxes: ``[N, 4]``, or a dict with the same keys as ``heatmaps``.
        titles (sequence of str, optional): one per image (column).
        size (float): inches per panel.

    Returns:
        matplotlib Figure with ``rows x N`` panels (``rows`` = number of models).
    """
    import matplotlib.pyplot as plt
    heat = heatmaps if isinstance(heatmaps, Mapping) else {"": heatmaps}
    preds = pred_boxes if isinstance(pred_boxes, Mapping) else {k: pred_boxes for k in heat}
    if set(preds) != set(heat):
        raise ValueError(f"pred_boxes keys {sorted(preds)} differ from heatmaps keys {sorted(heat)}")
    n = len(images)
    if n == 0:
        raise ValueError("no images to plot")
    gt = _boxes(gt_boxes, "gt_boxes").reshape(-1, 4)
    for k, h in heat.items():
        if len(h) != n or len(preds[k]) != n or len(gt) != n:
            raise ValueError(f"row {k!r}: {len(h)} heatmaps / {len(preds[k])} boxes / {len(gt)} gt boxes for "
                             f"{n} images")
    rows = list(heat)
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, size * len(rows) + 0.2), squeeze=False)
    for r, name in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            _overlay(ax, images[c], heat[name][c])
            _rect(ax, gt[c], "red")
            _rect(ax, preds[name][c], "lime")
            if r == 0 and titles is not None:
                ax.set_title(str(titles[c]), fontsize=7)
            if c == 0 and name:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def plot_masks(images: torch.Tensor, masks: Mapping[str, torch.Tensor], gt_masks: Optional[torch.Tensor] = None,
               gt_label: str = "ground truth", titles=None, size: float = 1.6):
    """ART Fig. 7 panels: one row per image: the image, the ground-truth mask (if given, titled ``gt_label``), then
    one estimated mask per entry of ``masks`` (e.g. ``{"Natural / IG": ..., "ART / IG": ...}``), each shown as the
    image with the mask's outside dimmed.

    Returns:
        matplotlib Figure with ``N x (1 + [gt] + len(masks))`` panels.
    """
    import matplotlib.pyplot as plt
    if not isinstance(masks, Mapping) or not masks:
        raise ValueError("masks must be a non-empty dict {column name: [N, H, W] bool}")
    n = len(images)
    cols = ["image"] + ([gt_label] if gt_masks is not None else []) + list(masks)
    fig, axes = plt.subplots(n, len(cols), figsize=(size * len(cols), size * n + 0.2), squeeze=False)
    for r in range(n):
        img = images[r].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
        shown = [None] + ([gt_masks[r]] if gt_masks is not None else []) + [masks[k][r] for k in masks]
        for c, m in enumerate(shown):
            ax = axes[r, c]
            if m is None:
                ax.imshow(img)
            else:
                mm = m.detach().cpu().numpy().astype(bool)[..., None]
                ax.imshow(np.where(mm, img, 0.15 * img))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=7)
        if titles is not None:
            axes[r, 0].set_ylabel(str(titles[r]), fontsize=7)
    fig.tight_layout()
    return fig
