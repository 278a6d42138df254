"""Attribution maps over captum, with one differentiable path for attribution attacks.

One verb, :func:`attribute`, computes a per-input attribution shaped like the input ``x`` for every method used by
the two papers; :func:`to_saliency_map` holds every channel reduction (attribution ``[B, C, H, W]`` -> map
``[B, H, W]``) in one place, so that attacks, metrics and figures agree on what "the saliency map" is.

Conventions (see ``DESIGN.md``):

* Images are float tensors in ``[0, 1]`` with normalisation inside the model, so attributions, baselines and noise
  all live in pixel space. An all-zero IG baseline is therefore the black image (ART, Ghorbani et al., RAR).
* The model is put in ``eval()`` mode while attributing (BatchNorm running statistics are neither used from the
  batch nor updated) and its previous ``training`` flag is restored on exit; parameter ``requires_grad`` flags are
  never changed (only input gradients are taken, with ``torch.autograd.grad``, so no ``.grad`` is accumulated).
* ``target`` is the class whose **logit** (pre-softmax output) is attributed. ART's released evaluation attributes
  the cross-entropy loss instead; wrap the model as ``nn.Sequential(model, nn.LogSoftmax(1))`` for that (IG of
  ``log p_y`` is minus IG of the CE loss, so ``|IG|`` maps coincide).
"""
from __future__ import annotations

import contextlib
from typing import Optional, Union

import numpy as np
import torch
import torch.nn as nn

from artlib import dryrun
from captum._utils.common import _run_forward
from captum.attr import (GradientShap, InputXGradient, IntegratedGradients, LayerAttribution, LayerGradCam,
                         NoiseTunnel, Saliency)
from captum.attr._utils.approximation_methods import SUPPORTED_METHODS as IG_METHODS
from captum.attr._utils.approximation_methods import approximation_parameters

__all__ = ["attribute", "to_saliency_map", "summed_gradients", "METHODS", "REDUCTIONS", "IG_METHODS", "find_gap_layer",
           "find_gradcam_layer"]

METHODS = ("ig", "saliency", "gradshap", "input_x_gradient", "smoothgrad", "gradcam", "cam")
DIFFERENTIABLE_METHODS = ("ig", "saliency", "input_x_gradient")
REDUCTIONS = ("sum_abs", "abs_sum", "sum", "mean", "mean_abs", "max_abs", "gray")

Target = Union[int, torch.Tensor]


# --------------------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Put ``model`` in eval mode for the block and restore its previous ``training`` flag (also on error)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _seeded(seed: Optional[int], device: torch.device):
    """Seed torch's global RNG (CPU and, when ``x`` is on CUDA, that device) and numpy's global RNG for the block,
    then restore both; no-op for ``seed=None``.

    captum's NoiseTunnel draws its noise from torch's global RNG and GradientShap its path points and baseline
    choices from torch's *and numpy's* global RNGs; forking keeps the caller's RNG states untouched.
    """
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        np.random.set_state(np_state)


def _softplus_context(model: nn.Module, beta: Optional[float], differentiable: bool = False,
                      method: str = "ig"):
    """ReLU -> softplus-``beta`` (ART Sec. 3.2) for the block: :func:`artlib.losses.fast_softplus` (same values and
    derivatives as ``nn.Softplus``); on the differentiable path :func:`artlib.losses.smooth_model`, which also records
    the convolutions and max-pools for a cheaper double backward (CPU and GPU, ``benchmarks/results/attacks.md``).
    captum's gradient methods (no layer hooks) get the activation swap and the max-pool recording (the same
    gradients bit for bit; CUDA's max-pool backward kernel is slow); Grad-CAM / CAM, whose layer hooks must see the
    model's own modules, only the activation swap."""
    if beta is not None and not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"beta must be a positive number or None, got {beta!r}")
    from artlib import losses  # imported on use: losses.py owns the fast softplus / conv recording
    if differentiable:
        return losses.smooth_model(model, beta)
    if method in ("gradcam", "cam"):
        return contextlib.nullcontext() if beta is None else losses.fast_softplus(model, beta)
    return losses.smooth_model(model, beta, convs=False)


def _check_x(x: torch.Tensor, model: Optional[nn.Module] = None) -> None:
    """``x`` must be a non-empty float ``[B, C, H, W]`` batch of images in ``[0, 1]`` with the model's channels
    (as :func:`artlib.attacks.pgd` requires); one ``ValueError`` naming the shape or the value range otherwise."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor [B, C, H, W], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)})")
    d = x.detach()
    if not bool(torch.isfinite(d).all()):
        raise ValueError(f"x must hold finite images in [0, 1], got NaN or inf (shape {tuple(x.shape)})")
    lo, hi = float(d.min()), float(d.max())
    if not (0.0 <= lo and hi <= 1.0):
        hint = "; it looks like 0-255 pixel values: divide by 255" if lo >= 0 and hi > 1.5 else ""
        raise ValueError(f"x must hold images in [0, 1] (normalisation is inside the model), got values in "
                         f"[{lo:.4g}, {hi:.4g}]{hint}")
    channels = _model_channels(model) if model is not None else None
    if channels is not None and x.shape[1] != channels:
        hint = (f"; it looks channels-last [B, H, W, C]: pass x.permute(0, 3, 1, 2)" if x.shape[-1] == channels
                else "")
        raise ValueError(f"x has {x.shape[1]} channels (shape {tuple(x.shape)}, read as [B, C, H, W]) but the model "
                         f"takes {channels}{hint}")


def _model_channels(model: nn.Module) -> Optional[int]:
    """Input channels of ``model``: its :class:`artlib.models.Normalize` layer's, else its first ``nn.Conv2d``'s
    (None when it has neither)."""
    from artlib import models
    for m in model.modules():
        if isinstance(m, models.Normalize):
            return int(m.mean.shape[0])
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def _num_classes(model: nn.Module) -> Optional[int]:
    """Outputs of a model built by :func:`artlib.models.build_model` (its named classifier), else None."""
    name = getattr(model, "fc_layer_name", None)
    if name:
        try:
            fc = model.get_submodule(name)
        except AttributeError:
            return None
        return getattr(fc, "out_features", None)
    return None


def _check_target_range(tgt: torch.Tensor, model: nn.Module, x: torch.Tensor, probe: bool = False) -> None:
    """Class indices must lie in ``[0, num_classes)``; ``probe`` runs the model on one image to learn
    ``num_classes`` when the model does not name its classifier (used after an indexing error)."""
    if tgt.numel() and int(tgt.min()) < 0:
        raise ValueError(f"target must hold class indices >= 0, got {int(tgt.min())}")
    k = _num_classes(model)
    if k is None and probe:
        with torch.no_grad(), _eval_mode(model):
            out = model(x[:1].detach())
        k = out.shape[1] if out.dim() == 2 else None
    if k is not None and tgt.numel() and int(tgt.max()) >= k:
        raise ValueError(f"target {int(tgt.max())} is out of range for a model with {k} classes (0..{k - 1})")


def _leaf(x: torch.Tensor) -> torch.Tensor:
    """A detached leaf view of ``x`` that requires grad (captum then does not warn and the caller's x is untouched)."""
    return x.detach().requires_grad_(True)


def _target_tensor(target: Target, x: torch.Tensor) -> torch.Tensor:
    """``int`` or ``Tensor[B]`` (or a 0-d tensor) -> LongTensor[B] on ``x.device``."""
    B = x.shape[0]
    if isinstance(target, bool):
        raise ValueError(f"target must be an int or an integer Tensor[B], got {target!r}")
    if isinstance(target, int):
        return torch.full((B,), target, dtype=torch.long, device=x.device)
    if isinstance(target, torch.Tensor) and not target.is_floating_point() and not target.is_complex():
        t = target.to(device=x.device, dtype=torch.long).reshape(-1)
        if t.numel() == 1:
            return t.expand(B).clone()
        if t.numel() == B:
            return t
        raise ValueError(f"target has {t.numel()} entries but x has batch size {B}")
    raise ValueError(f"target must be an int or an integer Tensor[B], got {type(target).__name__}")


def _ig_baseline(baselines, x: torch.Tensor, seed: Optional[int]) -> torch.Tensor:
    """Resolve the IG / GradientShap baseline to a tensor shaped like ``x`` (or broadcastable to it).

    ``None`` / ``"zero"`` -> zeros; a number -> constant image; ``"gaussian"`` -> one N(0, 1) draw per sample
    (Inequality A.8), drawn on CPU from ``torch.Generator().manual_seed(seed)`` and moved to ``x.device`` so the
    draw is identical on CPU and GPU; a tensor is broadcast to ``x``.
    """
    if baselines is None or (isinstance(baselines, str) and baselines == "zero"):
        return torch.zeros_like(x)
    if isinstance(baselines, str):
        if baselines == "gaussian":
            gen = torch.Generator()
            if seed is not None:
                gen.manual_seed(seed)
            else:
                gen.seed()
            return torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        raise ValueError(f"baselines must be None, 'zero', 'gaussian', a number or a tensor, got {baselines!r}")
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        return torch.full_like(x, float(baselines))
    if isinstance(baselines, torch.Tensor):
        try:
            return torch.broadcast_to(baselines.to(device=x.device, dtype=x.dtype), x.shape)
        except RuntimeError:
            raise ValueError(f"baselines of shape {tuple(baselines.shape)} do not broadcast to x {tuple(x.shape)}")
    raise ValueError("baselines must be None, 'zero', 'gaussian', a number or a tensor, "
                     f"got {type(baselines).__name__}")


def find_gap_layer(model: nn.Module) -> Optional[nn.Module]:
    """Return the last global-average-pooling module of ``model`` (``nn.AdaptiveAvgPool2d`` with output 1x1), or None.

    Its *input* is the final convolutional feature map ``A`` of a GAP classifier, which is what Grad-CAM and CAM use.
    """
    found = None
    for m in model.modules():
        if isinstance(m, nn.AdaptiveAvgPool2d):
            osz = m.output_size
            osz = (osz, osz) if isinstance(osz, int) else tuple(osz)
            if all(o in (1, None) for o in osz):
                found = m
    return found


def find_gradcam_layer(model: nn.Module):
    """The layer Grad-CAM / CAM attribute to, and whether to use its input (True) or its output (False).

    Resolution order: the model's own ``cam_layer_name`` (models from :func:`artlib.models.build_model` name the
    module whose output is the last post-ReLU feature map: ``net.features`` for WRN / small-cnn / DenseNet,
    ``net.layer4`` for ResNets, ``net.conv6`` for VGG-GAP — see :func:`artlib.models.cam_layer`); else the last
    global-average-pool module (its *input*, i.e. the same last feature map); else the last ``nn.Conv2d`` (output).
    """
    name = getattr(model, "cam_layer_name", None)
    if name:
        return model.get_submodule(name), False
    gap = find_gap_layer(model)
    if gap is not None:
        return gap, True
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model has no nn.Conv2d / global-average-pool layer; pass layer= explicitly")
    return convs[-1], False


def _last_linear(model: nn.Module) -> nn.Linear:
    name = getattr(model, "fc_layer_name", None)
    if name:
        return model.get_submodule(name)
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not lin:
        raise ValueError("method='cam' needs a GAP classifier ending in nn.Linear; model has no nn.Linear")
    return lin[-1]


# --------------------------------------------------------------------------------------------------------------
# captum's gradient methods, with one backward root per call
# --------------------------------------------------------------------------------------------------------------
def summed_gradients(forward_fn, inputs, target_ind=None, additional_forward_args=None):
    """captum's ``compute_gradients`` with one autograd root instead of one per output row.

    captum 0.9 takes the input gradient of the selected outputs ``o`` (one scalar per row: ``n_steps * B`` path
    images for IG) as ``torch.autograd.grad(torch.unbind(o), inputs)``: ``len(o)`` separate roots, each seeded with its
    own ``ones_like`` by the autograd engine. ``autograd.grad`` sums the gradients of its roots, so
    ``torch.autograd.grad(o.sum(), inputs)`` is the same quantity (bitwise on the CPU: the engine receives the same
    vector of ones at ``o``) from one root. The per-root bookkeeping is negligible on a CPU but was the main
    host-side cost of a batched IFIA step on an H200 (38,458 roots per call, ``benchmarks/results/attacks.md``).
    Used as the ``gradient_func`` of every captum gradient method :func:`attribute` builds (IG, Saliency,
    InputXGradient, GradientShap, NoiseTunnel(Saliency)); captum still builds the paths, targets and sums.
    """
    with torch.autograd.set_grad_enabled(True):
        out = _run_forward(forward_fn, inputs, target_ind, additional_forward_args)
        if out[0].numel() != 1:
            raise ValueError("captum gradient methods need one scalar output per row: pass a target for "
                             f"multi-output models (got rows of shape {tuple(out.shape[1:])})")
        return torch.autograd.grad(out.sum(), inputs)


def _captum(method_cls, model: nn.Module):
    """A captum gradient attribution method over ``model`` whose gradients come from :func:`summed_gradients`."""
    m = method_cls(model)
    m.gradient_func = summed_gradients
    return m


# --------------------------------------------------------------------------------------------------------------
# differentiable paths (captum does not support create_graph)
# --------------------------------------------------------------------------------------------------------------
def _target_logit_sum(model: nn.Module, pts: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    out = model(pts)
    if out.dim() != 2:
        raise ValueError(f"model must return logits [B, num_classes], got {tuple(out.shape)}")
    return out.gather(1, tgt.view(-1, 1)).sum()


def _input_grad(model, x, tgt, create_graph):
    xin = x if x.requires_grad else x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(_target_logit_sum(model, xin, tgt), xin, create_graph=create_graph)
    return g


def _ig_riemann(model, x, tgt, base, n_steps, ig_method, internal_batch_size, create_graph):
    """IG as captum computes it, written out so that ``create_graph=True`` works.

    ``IG(x) = (x - x') * sum_k w_k * d f_t(x' + a_k (x - x')) / d input`` with the quadrature nodes ``a_k`` and weights
    ``w_k`` of captum's ``approximation_parameters(ig_method)`` — the same rule captum's ``IntegratedGradients`` uses,
    so both paths agree to float precision (captum rounds the weights to float32, so for ``"gausslegendre"`` the two
    differ by ~1e-7 relative; the Riemann weights 1/n are exact for n a power of two). Path points are processed
    ``internal_batch_size`` rows at a time (all ``n_steps * B`` at once when None), step-major as in captum.
    """
    step_fn, alpha_fn = approximation_parameters(ig_method)
    alphas = torch.tensor(alpha_fn(n_steps), dtype=x.dtype, device=x.device)
    weights = torch.tensor(step_fn(n_steps), dtype=x.dtype, device=x.device)
    B = x.shape[0]
    diff = x - base
    per_chunk = n_steps if internal_batch_size is None else max(1, int(internal_batch_size) // max(B, 1))
    shape = (-1,) + (1,) * x.dim()
    total = None
    for s in range(0, n_steps, per_chunk):
        a, w = alphas[s:s + per_chunk].view(shape), weights[s:s + per_chunk].view(shape)
        k = a.shape[0]
        pts = (base.unsqueeze(0) + a * diff.unsqueeze(0)).reshape(k * B, *x.shape[1:])
        if not pts.requires_grad:
            pts.requires_grad_(True)
        (g,) = torch.autograd.grad(_target_logit_sum(model, pts, tgt.repeat(k)), pts, create_graph=create_graph)
        part = (w * g.view(k, *x.shape)).sum(0)
        total = part if total is None else total + part
    return diff * total


# --------------------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------------------
def attribute(model: nn.Module, x: torch.Tensor, target: Target, method: str = "ig", *, baselines=None,
              n_steps: int = 50, internal_batch_size: Optional[int] = None, differentiable: bool = False,
              beta: Optional[float] = None, n_samples: Optional[int] = None, stdevs: Optional[float] = None,
              layer: Optional[nn.Module] = None, seed: Optional[int] = None,
              ig_method: str = "gausslegendre") -> torch.Tensor:
    r"""Attribution of the ``target`` logit of ``model`` to each input entry, shaped like ``x``.

    Methods (captum 0.9 under the hood, except the differentiable path and ``cam``):

    * ``"ig"`` — Integrated Gradients (Sundararajan et al., ICML 2017, Eq. 1)
      ``IG_i(x) = (x_i - x'_i) \int_0^1 \partial f_t(x' + a(x - x')) / \partial x_i da``, approximated by
      ``ig_method`` with ``n_steps`` nodes. ART / Ghorbani / RAR: zero (black) baseline, the default; Inequality A.8:
      ``n_steps=20`` and ``baselines="gaussian"`` (one N(0,1) draw per sample, in the model's input space, i.e. pixel
      space here — their released code instead used a zero baseline in normalised space; see
      ``papers/baselines_code_facts.md`` §4.2). Quadrature: ``ig_method`` is one of captum's rules
      (``"gausslegendre"`` default, as captum and the Inequality code; ``"riemann_right"`` with 100 steps is
      Ghorbani's/RAR's rule; ``"riemann_trapezoid"`` with 101 steps ART's evaluation rule up to a constant factor
      100/101 — captum's trapezoid weights are ``1/n`` with halved ends, which rescales but does not re-rank maps).
    * ``"saliency"`` — the raw input gradient ``\partial f_t / \partial x`` (Simonyan et al. 2014; captum
      ``Saliency(abs=False)``; take ``|.|`` with :func:`to_saliency_map`).
    * ``"input_x_gradient"`` — ``x * \partial f_t / \partial x`` (Shrikumar et al. 2016).
    * ``"gradshap"`` — GradientShap (Lundberg & Lee 2017): expected gradients between random baselines from the
      ``baselines`` distribution (zero image by default, as Inequality A.8) and ``x`` (plus ``stdevs`` noise,
      default 0),
      ``n_samples`` draws (default 10 for images up to 64x64 — CIFAR — and 20 above — ImageNet, Inequality A.8).
    * ``"smoothgrad"`` — SmoothGrad (Smilkov et al. 2017): mean of the raw gradient over ``n_samples`` (default 20,
      Inequality A.8) copies of ``x`` with N(0, ``stdevs``²) noise (default ``stdevs=0.15``, i.e. 15 % of the [0, 1]
      pixel range, Smilkov et al.'s recommended 10-20 %); captum ``NoiseTunnel(Saliency)``.
    * ``"gradcam"`` — Grad-CAM (Selvaraju et al. 2017): ``ReLU(sum_k alpha_k A^k)``, ``alpha_k`` the spatial mean of
      ``\partial f_t / \partial A^k``, on ``layer`` (default :func:`find_gradcam_layer`: the model's
      ``cam_layer``, the last post-ReLU feature map), upsampled bilinearly to ``H x W`` with captum's
      ``LayerAttribution.interpolate`` and repeated over channels.
    * ``"cam"`` — Class Activation Map (Zhou et al., CVPR 2016, Eq. 2) for global-average-pool classifiers:
      ``M_t = sum_k w_{t,k} A^k`` with ``A`` the last feature map (``layer``'s output, default as Grad-CAM: the
      model's ``cam_layer``, i.e. the map the GAP averages) and ``w`` the classifier weight (``fc_layer`` or the last
      ``nn.Linear``); no ReLU, sum over ``k`` (wsolevaluation uses the mean over ``k``:
      a constant factor that min-max normalisation removes); spatial mean of ``M_t`` = logit minus bias. Upsampled
      bilinearly and repeated over channels as for Grad-CAM.

    Args:
        model (nn.Module): classifier returning logits ``[B, num_classes]`` for inputs in ``[0, 1]``.
        x (Tensor): inputs ``[B, C, H, W]`` (floating point).
        target (int or Tensor[B]): class index per sample whose logit is attributed.
        method (str): one of :data:`METHODS`. Default ``"ig"``.
        baselines: IG / GradientShap baseline: ``None`` (zero image), ``"zero"``, ``"gaussian"`` (IG only; N(0,1),
            seeded by ``seed``), a number, or a tensor broadcastable to ``x`` (for ``gradshap``: a tensor
            ``[K, C, H, W]`` of baselines to sample from). Default None.
        n_steps (int): IG quadrature nodes. Default 50 (captum). Inequality A.8: 20; Ghorbani/ART attack: 100.
        internal_batch_size (int, optional): IG path points evaluated per forward pass (memory bound); for
            ``smoothgrad`` the number of noisy copies per pass. Default None (all at once).
        differentiable (bool): if True return the attribution *with its autograd graph*
            (``create_graph=True``) so a loss on it can be back-propagated to ``x`` (set ``x.requires_grad_()``
            first). Supported for ``"ig"``, ``"saliency"`` and ``"input_x_gradient"``; IG uses the same
            ``ig_method`` nodes and weights as captum, so it equals ``differentiable=False`` up to float error.
            Through a ReLU network the second derivative is zero almost everywhere: use ``beta`` (ART, RAR and
            Ghorbani attack through Softplus). Default False (detached result).
        beta (float, optional): if given, every ``nn.ReLU`` is swapped for ``Softplus(beta)`` during the computation
            (``artlib.models.softplus_relu``; ART uses beta=50 for the attack path). Default None (model as is).
        n_samples (int, optional): samples for ``gradshap`` / ``smoothgrad`` (defaults above).
        stdevs (float, optional): noise std for ``smoothgrad`` (default 0.15) and ``gradshap`` (default 0.0).
        layer (nn.Module, optional): layer for ``gradcam`` (its output) / ``cam`` (its output is ``A``).
        seed (int, optional): seeds the Gaussian IG baseline and the GradientShap / SmoothGrad draws without
            touching the caller's torch / numpy global RNG states (forked and restored). The SmoothGrad draws also
            depend on ``internal_batch_size`` (captum draws per batch of noisy copies). Default None (global RNGs).
        ig_method (str): IG quadrature rule, one of :data:`IG_METHODS`. Default ``"gausslegendre"``.

    Returns:
        Tensor shaped like ``x`` (same dtype and device); detached unless ``differentiable=True``.

    Raises:
        ValueError: unknown ``method`` / ``ig_method``, bad ``x`` / ``target`` / ``baselines`` / ``beta``, or
        ``differentiable=True`` with a method that has no differentiable path.

    Example::

        >>> from artlib import models, attribution
        >>> net = models.build_model("small-cnn", 10)
        >>> x = torch.rand(4, 3, 32, 32)
        >>> ig = attribution.attribute(net, x, target=net(x).argmax(1), method="ig", n_steps=20)
        >>> attribution.to_saliency_map(ig).shape
        torch.Size([4, 32, 32])
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {list(METHODS)}")
    if ig_method not in IG_METHODS:
        raise ValueError(f"unknown ig_method {ig_method!r}; choose one of {list(IG_METHODS)}")
    if differentiable and method not in DIFFERENTIABLE_METHODS:
        raise ValueError(f"differentiable=True supports methods {list(DIFFERENTIABLE_METHODS)}, got {method!r}")
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 2:
        raise ValueError(f"n_steps must be an int >= 2, got {n_steps!r}")
    if n_samples is not None and (not isinstance(n_samples, int) or n_samples < 1):
        raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if stdevs is not None and (not isinstance(stdevs, (int, float)) or stdevs < 0):
        raise ValueError(f"stdevs must be a non-negative number, got {stdevs!r}")
    if internal_batch_size is not None and (not isinstance(internal_batch_size, int) or internal_batch_size < 1):
        raise ValueError(f"internal_batch_size must be a positive int, got {internal_batch_size!r}")
    _check_x(x, model)
    tgt = _target_tensor(target, x)
    _check_target_range(tgt, model, x)
    n_steps, n_samples = max(2, dryrun.iterations(n_steps)), dryrun.iterations(n_samples)
    try:
        return _attribute(model, x, tgt, method, baselines, n_steps, internal_batch_size, differentiable, beta,
                          n_samples, stdevs, layer, seed, ig_method)
    except (IndexError, RuntimeError) as exc:  # a target past the outputs of a model that names no classifier
        if "index" in str(exc).lower() or "out of bounds" in str(exc).lower():
            _check_target_range(tgt, model, x, probe=True)
        raise


def _attribute(model, x, tgt, method, baselines, n_steps, internal_batch_size, differentiable, beta, n_samples,
               stdevs, layer, seed, ig_method):
    with _softplus_context(model, beta, differentiable, method), _eval_mode(model), torch.enable_grad(), \
            _seeded(seed, x.device):
        if method == "ig":
            base = _ig_baseline(baselines, x, seed)
            if differentiable:
                return _ig_riemann(model, x, tgt, base, n_steps, ig_method, internal_batch_size, True)
            out = _captum(IntegratedGradients, model).attribute(_leaf(x), baselines=base.detach(), target=tgt,
                                                       n_steps=n_steps, method=ig_method,
                                                       internal_batch_size=internal_batch_size)
        elif method == "saliency":
            if differentiable:
                return _input_grad(model, x, tgt, True)
            out = _captum(Saliency, model).attribute(_leaf(x), target=tgt, abs=False)
        elif method == "input_x_gradient":
            if differentiable:
                return x * _input_grad(model, x, tgt, True)
            out = _captum(InputXGradient, model).attribute(_leaf(x), target=tgt)
        elif method == "gradshap":
            if baselines is None or (isinstance(baselines, str) and baselines == "zero"):
                dist = torch.zeros((1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
            elif isinstance(baselines, torch.Tensor):
                dist = baselines.to(device=x.device, dtype=x.dtype)
                if dist.dim() == x.dim() - 1:
                    dist = dist.unsqueeze(0)
                if dist.dim() != x.dim() or tuple(dist.shape[1:]) != tuple(x.shape[1:]):
                    raise ValueError(f"gradshap baselines must be [K, C, H, W] with C, H, W = {tuple(x.shape[1:])}, "
                                     f"got {tuple(baselines.shape)}")
            else:
                raise ValueError(f"gradshap baselines must be None, 'zero' or a tensor, got {baselines!r}")
            n = n_samples if n_samples is not None else (10 if x.shape[-1] * x.shape[-2] <= 64 * 64 else 20)
            out = _captum(GradientShap, model).attribute(_leaf(x), baselines=dist, target=tgt, n_samples=n,
                                                stdevs=float(stdevs or 0.0))
        elif method == "smoothgrad":
            n = n_samples if n_samples is not None else 20
            out = NoiseTunnel(_captum(Saliency, model)).attribute(
                _leaf(x), nt_type="smoothgrad", nt_samples=n, nt_samples_batch_size=internal_batch_size,
                stdevs=float(0.15 if stdevs is None else stdevs), target=tgt, abs=False)
        elif method == "gradcam":
            if layer is None:
                layer_, to_input = find_gradcam_layer(model)
            else:
                layer_, to_input = layer, False
            cam = LayerGradCam(model, layer_).attribute(_leaf(x), target=tgt, relu_attributions=True,
                                                        attribute_to_layer_input=to_input)
            out = _upsample_like(cam, x)
        else:  # cam
            out = _upsample_like(_cam(model, _leaf(x), tgt, layer), x)
    return out.detach()


def _upsample_like(amap: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B, 1, h, w] layer map -> [B, C, H, W]: bilinear upsampling (captum interpolate), repeated over channels."""
    if amap.dim() == 3:
        amap = amap.unsqueeze(1)
    if amap.shape[1] != 1:  # captum sums over the layer channels already; be safe for custom layers
        amap = amap.sum(1, keepdim=True)
    if tuple(amap.shape[-2:]) != tuple(x.shape[-2:]):
        amap = LayerAttribution.interpolate(amap, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return amap.to(x.dtype).expand(-1, x.shape[1], -1, -1).contiguous()


def _cam(model: nn.Module, x: torch.Tensor, tgt: torch.Tensor, layer: Optional[nn.Module]) -> torch.Tensor:
    """CAM ``sum_k w[t, k] A^k`` at feature resolution, ``[B, 1, h, w]``."""
    fc = _last_linear(model)
    feats = {}
    if layer is None:
        if find_gap_layer(model) is None and not getattr(model, "cam_layer_name", None):
            raise ValueError("method='cam' needs a global-average-pool classifier (nn.AdaptiveAvgPool2d(1)) or an "
                             "explicit layer= whose output feeds the GAP")
        layer, to_input = find_gradcam_layer(model)
    else:
        to_input = False
    if to_input:
        handle = layer.register_forward_pre_hook(lambda m, i: feats.__setitem__("A", i[0]))
    else:
        handle = layer.register_forward_hook(lambda m, i, o: feats.__setitem__("A", o))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    A = feats["A"]
    if A.dim() != 4 or A.shape[1] != fc.in_features:
        raise ValueError(f"CAM feature map {tuple(A.shape)} does not match the last nn.Linear "
                         f"(in_features={fc.in_features}); pass layer= explicitly")
    w = fc.weight[tgt].to(A.dtype)  # [B, K]
    return torch.einsum("bk,bkhw->bhw", w, A).unsqueeze(1)


def to_saliency_map(attr: torch.Tensor, reduce: str = "sum_abs", normalize: bool = False) -> torch.Tensor:
    r"""Reduce an attribution ``[B, C, H, W]`` over channels to a per-pixel map ``[B, H, W]``.

    Reductions (``a`` = attribution, over the channel axis):

    * ``"sum_abs"`` — ``sum_c |a_c|``: Ghorbani et al. (AAAI 2019) and RAR's attack/metric saliency, ART's attack
      (``papers/art_official_code_facts.md``), the default.
    * ``"mean_abs"`` — ``mean_c |a_c|``: ART's released evaluation (``cifar/eval_model.py``) and its gradient
      localisation maps; same ranks as ``sum_abs`` (constant factor C).
    * ``"abs_sum"`` — ``|sum_c a_c|``.
    * ``"sum"`` — ``sum_c a_c`` (signed).
    * ``"mean"`` — ``mean_c a_c`` (signed): the Inequality paper's occlusion importance map
      (``get_feature_map_avg`` in its released code).
    * ``"max_abs"`` — ``max_c |a_c|``: Simonyan et al. (2014) saliency map.
    * ``"gray"`` — ``sum_c |a_c|`` clipped to its per-sample 99th percentile and min-max scaled to ``[0, 1]``:
      Smilkov et al.'s (SmoothGrad) grayscale visualisation (PAIR ``VisualizeImageGrayscale``), for figures.

    Note: the Inequality paper's Gini is computed on ``|a|`` flattened over all C x H x W entries, not on a
    reduced map — see :func:`artlib.metrics.gini_global`.

    Args:
        attr (Tensor): attribution ``[B, C, H, W]``.
        reduce (str): one of :data:`REDUCTIONS`. Default ``"sum_abs"``.
        normalize (bool): if True rescale each map to sum ``H*W`` (Ghorbani/ART convention, ``map * H*W / sum``;
            maps summing to 0 are left unchanged). Default False.

    Returns:
        Tensor ``[B, H, W]``.

    Example::

        >>> to_saliency_map(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 4, 4])
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduce {reduce!r}; choose one of {list(REDUCTIONS)}")
    if not isinstance(attr, torch.Tensor) or attr.dim() != 4:
        shape = tuple(attr.shape) if isinstance(attr, torch.Tensor) else type(attr).__name__
        raise ValueError(f"attr must be a tensor [B, C, H, W], got {shape}")
    if reduce == "sum_abs":
        m = attr.abs().sum(1)
    elif reduce == "mean_abs":
        m = attr.abs().mean(1)
    elif reduce == "abs_sum":
        m = attr.sum(1).abs()
    elif reduce == "sum":
        m = attr.sum(1)
    elif reduce == "mean":
        m = attr.mean(1)
    elif reduce == "max_abs":
        m = attr.abs().amax(1)
    else:  # gray
        m = attr.abs().sum(1)
        flat = m.flatten(1)
        vmax = torch.quantile(flat.float(), 0.99, dim=1).to(m.dtype).view(-1, 1, 1)
        vmin = flat.amin(1).view(-1, 1, 1)
        m = ((m - vmin) / (vmax - vmin).clamp_min(torch.finfo(m.dtype).tiny)).clamp(0, 1)
    if normalize:
        s = m.flatten(1).sum(1).view(-1, 1, 1)
        hw = m.shape[-1] * m.shape[-2]
        m = torch.where(s != 0, m * hw / torch.where(s != 0, s, torch.ones_like(s)), m)
    return m
