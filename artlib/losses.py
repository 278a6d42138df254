r"""Training losses: ART's attribution loss (Eq. 5) and its Table-5 variants, and RAR's IG-NORM / IG-SUM-NORM.

- **ART** — Singh, Kumari, Mangla, Sinha, Balasubramanian, Krishnamurthy, "Attributional Robustness Training using
  Input-Gradient Spatial Alignment", ECCV 2020 (``papers/art_eccv2020.txt``). :func:`art_loss` is the per-sample
  :math:`L_{attr}` of Eq. 5, computed through a softplus-:math:`\beta` copy of the network (Sec. 3.2);
  :func:`art_perturb` is the inner maximisation of Algorithm 1 (lines 4-8), and appendix C's variant that ascends
  :math:`L_{attr} + L_{ce}`. The authors' released training code differs (``papers/art_official_code_facts.md``):
  :func:`art_loss_official` (Eq. 5 on the clean and perturbed rows with hard mining, in the normalised space) and
  :func:`art_perturb_official` (the ascent restricted to the top-k entries by :math:`|g^y|`), selected in training
  by ``TrainConfig.setting="official"``.
- **RAR** — Chen, Wu, Rastogi, Liang, Jha, "Robust Attribution Regularization", NeurIPS 2019 (ART's baseline [13]):
  :func:`ig_norm` (the :math:`\|IG\|_1` regulariser), :func:`ig_sum_norm` and :func:`ig_perturb` (their inner PGD).

Everything takes images in ``[0, 1]`` (the models normalise inside, see :mod:`artlib.models`), is batch-first and
returns per-sample values ``[B]``; the trainer (:mod:`artlib.train`) takes the batch mean.

Speed (``impl="fast"``, the default; ``impl="reference"`` is the straightforward transcription with ``nn.Softplus``,
kept for tests and the benchmark, see ``benchmarks/bench_train.py`` and ``benchmarks/results/train.md``):

1. :class:`SoftplusBeta`, a softplus-:math:`\beta` computed from vectorised ``exp`` / ``log`` (float32
   ``F.softplus`` and ``log1p`` run ~50x slower than ``exp`` on the benchmark CPU), whose backward is
   ``grad * sigmoid(beta x)`` with the sigmoid recorded as one op (:class:`_SigmoidBetaFn`), so that its double
   backward is one multiply and one fused ``sigmoid_backward`` kernel (``nn.Softplus`` rebuilds ``exp`` /
   ``sigmoid`` through ~7 elementwise kernels there, and a sigmoid recorded from native ops would add its clamp's
   unvectorised ``where``);
2. convolutions whose input gradient is recorded as an explicit ``conv_transpose2d`` op, so that the double
   backward uses the backend's weight-gradient kernel instead of ``convolution_backward``'s generic double-backward
   formula (a convolution with batch and channels swapped): on the CPU -17 % (resnet18) / -25 % (small-cnn) per
   L_attr pass; on an H200 the ART step -27 % (resnet18) / -10 % (WRN-28-10), batch 128 fp32, where cuDNN ran that
   swapped convolution through a slow implicit-GEMM kernel (72 % of the GPU time of a batched IFIA step). The
   weight gradients stay with the native conv's own node (:class:`_ConvInputGrad`), so passes that only need
   ``d/dx`` (all of ART's input gradients and its inner ascent) skip them: a further -13 % (small-cnn) / -21 %
   (resnet18) per ART step on the CPU, bitwise the same values. Likewise non-overlapping max-pools, whose input
   gradient is recorded as ``max_unpool2d`` (:class:`_MaxPool2dFn`; on a CPU the 2x2 forward is computed from
   strided slices, 3.4x faster than the native NCHW kernel, bitwise the same values and indices);
3. :math:`i^*` passed in (the trainer computes it once per batch from the clean forward pass, Algorithm 1 line 10)
   instead of another forward pass per call.

:math:`g^y` and :math:`g^{i^*}` could also come from one batched vector-Jacobian product
(:func:`input_gradients` with ``batched=True``, ``is_grads_batched``); measured, it is slower than two backward
passes over the same graph on this CPU and on an H200, so both implementations use two passes.

Both implementations give the same values and derivatives (float64 tests in ``tests/test_losses.py``).
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ART_VARIANTS", "REDUCE_CHANNELS", "CLAMP_BELOW", "SoftplusBeta", "softplus_beta", "fast_softplus",
           "smooth_model", "input_gradients", "cosine_distance", "runner_up", "art_loss", "art_terms", "art_perturb",
           "OFFICIAL_TOPK", "art_terms_official", "art_loss_official", "topk_entry_mask", "art_perturb_official",
           "integrated_gradients_path", "ig_norm", "ig_sum_norm", "ig_perturb", "project_linf"]

#: ``variant`` values of :func:`art_loss`: Eq. 5 (ART) and the objectives of ART's Table 5 (appendix A.1).
ART_VARIANTS = ("art", "argmin", "eq4_cos", "eq4_l2", "eq2")
#: ``reduce_channels`` values: None (all C*H*W entries), "mean" (ART B.1 as written: mean over channels of image and
#: gradient) and "abs_mean" (the authors' WSOL code: mean over channels of |image| and |gradient|).
REDUCE_CHANNELS = (None, "mean", "abs_mean")
_IMPLS = ("fast", "reference")
_SPACES = ("pixel", "normalized")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choices: {', '.join(repr(c) for c in choices)}")


def _check_beta(beta) -> None:
    if beta is not None and not (isinstance(beta, (int, float)) and beta > 0):
        raise ValueError(f"beta must be > 0 (or None for no ReLU -> softplus swap), got {beta!r}")


def _check_xy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a [B, C, H, W] image tensor, got {type(x).__name__} "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}")
    y = torch.as_tensor(y, device=x.device)
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.dtype in (torch.float16, torch.float32, torch.float64):
        raise ValueError(f"y must be integer labels of shape [{x.shape[0]}], got {y.dtype} {tuple(y.shape)}")
    return y.long()


# ----------------------------------------------------------------------------------------------------------------------
# Fused softplus-beta with a cheap double backward
# ----------------------------------------------------------------------------------------------------------------------
#: Lower clamp of :math:`\beta x` inside :class:`SoftplusBeta`: ``exp`` of arguments below about -87 gives float32
#: denormals, and on x86 CPUs ops that read or write denormals take a much slower path. At -60 the clamped terms are
#: :math:`e^{-60} \approx 9 \cdot 10^{-27}`, far below anything a result can see.
CLAMP_BELOW = -60.0


def _softplus_forward(x: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:
    """softplus_beta(x) = relu(x) + log(1 + exp(-beta |x|)) / beta, from fast vectorised kernels.

    ``F.softplus`` (and ``log1p``) run about 50x slower than ``exp`` / ``log`` in float32 on the CPU this package is
    benchmarked on (12 ms vs 0.2-0.8 ms per million values). ``log(1 + e)`` instead of ``log1p(e)`` costs at most
    float32's rounding of ``1 + e`` (an absolute error below 6e-8 / beta, i.e. below 1.2e-9 for beta = 50); for
    ``beta |x| > 17``, ``1 + e`` rounds to 1 and the result is exactly ``relu(x)`` (``nn.Softplus`` returns ``x`` past
    its threshold; below ``-threshold / beta`` it returns ``e / beta < 2e-9 / beta``). float64 and GPU tensors use
    ``F.softplus`` (exact, and fast there: one kernel)."""
    if x.dtype == torch.float64 or x.device.type != "cpu":
        return F.softplus(x, beta, threshold)
    e = x.abs().mul_(-beta).clamp_(min=CLAMP_BELOW).exp_()
    return torch.relu(x).add_(e.add_(1.0).log_().div_(beta))


class _SigmoidBetaFn(torch.autograd.Function):
    r"""``sigmoid(beta x)`` (on a CPU with ``beta x`` clamped below at :data:`CLAMP_BELOW`; in float64 exactly 1 where
    ``beta x > threshold``, ``nn.Softplus``'s linear region), the derivative of softplus-beta, as one recorded op
    whose backward is ``beta * sigmoid_backward(grad, s)`` from the saved output ``s``.

    Recorded as the chain ``mul -> clamp -> sigmoid`` of native ops, every double backward would also run the
    clamp's backward, a ``gt`` and a ``where`` that together cost 5-13x the sigmoid itself on the benchmark CPU
    (``where`` on a boolean mask is not vectorised there), for a derivative that differs only where
    :math:`\beta x < -60`: there the clamp's derivative is 0 and this Function's is :math:`\beta s (1 - s)
    \approx 4 \cdot 10^{-25}`, the true derivative of the clamped value. Results are bitwise the same in the
    benchmarked ART steps; the tiny terms where :math:`\beta x < -60` changed one seed-unstable smoke model
    (notebook 30, ART with lambda = 2) at the bit level, which its training then amplified.
    Higher derivatives are exact too: ``s`` is this Function's own output, so differentiating the backward goes
    through this backward again. ``generate_vmap_rule``: works inside ``is_grads_batched``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, beta, threshold):
        bx = x * beta
        if bx.device.type == "cpu":  # denormals are slow on x86 CPUs only
            bx.clamp_(min=CLAMP_BELOW)
        # float32 / bfloat16 / float16 sigmoid(t) already rounds to exactly 1 for t > 17; float64 needs the mask
        linear = bx > threshold if bx.dtype == torch.float64 else None
        s = bx.sigmoid_()
        if linear is not None:
            s.masked_fill_(linear, 1.0)
        return s

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.beta = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return torch.ops.aten.sigmoid_backward(grad, s) * ctx.beta, None, None


class _SoftplusBetaFn(torch.autograd.Function):
    """softplus-beta whose backward is ``grad * sigmoid(beta x)``, with ``sigmoid(beta x)`` recorded (when the
    backward runs with ``create_graph=True``) as :class:`_SigmoidBetaFn`: the double backward then costs a multiply
    and one ``sigmoid_backward`` kernel instead of ``nn.Softplus``'s rebuilt chain of ~7 elementwise ops."""

    @staticmethod
    def forward(x, beta, threshold):
        return _softplus_forward(x, beta, threshold)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, beta, threshold = inputs
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensors  # recorded only under create_graph (apply records nothing with grad disabled)
        return grad_y * _SigmoidBetaFn.apply(x, ctx.beta, ctx.threshold), None, None


def softplus_beta(x: torch.Tensor, beta: float = 50.0, threshold: float = 20.0) -> torch.Tensor:
    r"""Fused :math:`\mathrm{softplus}_\beta(x) = \frac{1}{\beta}\log(1 + e^{\beta x})` (``x`` where
    :math:`\beta x >` ``threshold``), equal to ``F.softplus(x, beta, threshold)`` in value, first and second
    derivatives (float64: to rounding; float32: values to 1.2e-9 / (beta / 50), see ``_softplus_forward``), several
    times faster on a CPU, with a cheaper backward and double backward (ART Sec. 3.2 needs the latter).

    Args:
        x (Tensor): any shape.
        beta (float): :math:`\beta > 0`. Default 50 (ART).
        threshold (float): linear region as in ``nn.Softplus``. Default 20.

    Returns:
        Tensor shaped like ``x``.

    Example:
        >>> x = torch.randn(5, requires_grad=True)
        >>> g, = torch.autograd.grad(softplus_beta(x).sum(), x, create_graph=True)   # sigmoid(50 x)
        >>> h, = torch.autograd.grad(g.sum(), x)                                        # 50 s (1 - s)
    """
    return _SoftplusBetaFn.apply(x, float(beta), float(threshold))


class SoftplusBeta(nn.Module):
    """``nn.Softplus(beta, threshold)`` computed with :func:`softplus_beta` (same values and derivatives)."""

    def __init__(self, beta: float = 50.0, threshold: float = 20.0):
        super().__init__()
        _check_beta(beta)
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softplus_beta(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}, threshold={self.threshold:g}"


class _ConvInputGrad(torch.autograd.Function):
    """The input path of a recorded ``F.conv2d``: a ``-0.0`` tensor shaped like the conv's output, added in place to
    ``y = F.conv2d(x.detach(), W, b)``, whose backward returns ``F.conv_transpose2d(grad, W)`` for ``x``.

    ART differentiates input gradients once more. With the native conv, that second pass goes through
    ``convolution_backward``'s generic double-backward formula, which computes the weight term as a convolution with
    batch and channels swapped (slow on oneDNN CPUs and in cuDNN). Recorded as a transposed convolution, the second
    pass is that op's ordinary backward (the backend's weight-gradient kernel). ``W`` and ``b`` get their gradients
    from ``y``'s own native node, which autograd runs only when a weight gradient is asked for: the many passes that
    only need ``d/dx`` (every input gradient ART takes, the inner ascent, the attacks) skip the weight term (a custom
    Function cannot: its ``needs_input_grad`` says only whether an input requires grad). Adding ``-0.0`` leaves
    every value as it is (also the sign of zeros), so values and derivatives are bit for bit the native conv's on
    the CPU; and the recorded conv's output is the native conv's own tensor, not a view made inside a custom
    Function, so models that modify it in place (``out += shortcut`` in pre-activation ResNets) work. The ``-0.0``
    is one scalar expanded, so the recording allocates nothing of the output's size (a copy of the output cost the
    small-cnn ART step 9 % on the benchmark CPU)."""

    @staticmethod
    def forward(x, weight, shape, dtype, stride, padding, dilation, groups):
        return torch.full((), -0.0, dtype=dtype, device=x.device).expand(shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, shape, dtype, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(weight)
        ctx.conf = (tuple(x.shape[2:]), stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        size, stride, padding, dilation, groups = ctx.conf
        gx = None
        if ctx.needs_input_grad[0]:
            out_pad = [size[i] - ((grad.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                  + dilation[i] * (weight.shape[2 + i] - 1) + 1) for i in range(2)]
            # AMP: the forward ran in autocast's dtype
            gx = F.conv_transpose2d(grad, weight.to(grad.dtype), None, stride, padding, out_pad, groups, dilation)
        return gx, None, None, None, None, None, None, None


def _max_pool2x2_cpu(x: torch.Tensor) -> tuple:
    """``F.max_pool2d(x, 2, 2, return_indices=True)`` from strided slices: the four window positions compared in
    ``max_pool2d``'s scan order (the first maximum wins ties, as natively), the flat indices built arithmetically.
    Bitwise the same values and indices (``tests/test_losses.py``) except where a window holds a NaN (the value is
    NaN either way; the index may name another element of that window). 3.2-3.4x faster than the native NCHW kernel
    on the benchmark CPU (4.4 -> 1.3 ms for ``[32, 32, 32, 32]``, 1 thread); ``where`` / ``masked_fill`` are avoided
    because they are not vectorised there."""
    H, W = x.shape[-2:]
    OH, OW = H // 2, W // 2
    a, b, c, d = (x[..., i:i + 2 * OH - 1:2, j:j + 2 * OW - 1:2] for i in (0, 1) for j in (0, 1))
    top, bottom = torch.maximum(a, b), torch.maximum(c, d)
    first = (b > a).to(torch.int64)          # column of the winner in the top row
    second = (d > c).to(torch.int64)         # ... in the bottom row
    low = (bottom > top).to(torch.int64)     # the bottom row wins (strictly)
    # offset in the window: first + low * (W + second - first)
    offset = second.sub_(first).add_(W).mul_(low).add_(first)
    base = (torch.arange(OH, device=x.device) * (2 * W))[:, None] + torch.arange(OW, device=x.device) * 2
    return torch.maximum(top, bottom), offset.add_(base)


class _MaxPool2dFn(torch.autograd.Function):
    """Non-overlapping ``F.max_pool2d`` (kernel == stride, no padding / dilation) whose input gradient is recorded as
    ``F.max_unpool2d(grad, indices)``: the same scatter of each window's gradient to its arg-max as
    ``max_pool2d_with_indices_backward`` (bitwise), whose own derivative (a gather at the indices) is what the double
    backward needs. CUDA's ``max_pool2d`` backward kernel searches every window overlapping each input pixel and took
    18-20 % of a batched IFIA step's GPU time on an H200 (small-cnn); the unpool is a plain scatter. On a CPU the
    2x2 forward is :func:`_max_pool2x2_cpu` (the native NCHW kernel was 16 % of small-cnn's ART step)."""

    @staticmethod
    def forward(x, kernel_size, stride):
        if x.device.type == "cpu" and _pair(kernel_size) == (2, 2) and x.dim() == 4 and min(x.shape[-2:]) >= 2:
            return _max_pool2x2_cpu(x)
        return F.max_pool2d(x, kernel_size, stride, return_indices=True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, kernel_size, stride = inputs
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])
        ctx.conf = (kernel_size, stride, tuple(x.shape[-2:]))

    @staticmethod
    def backward(ctx, grad, _grad_indices):
        (indices,) = ctx.saved_tensors
        kernel_size, stride, size = ctx.conf
        return F.max_unpool2d(grad, indices, kernel_size, stride, output_size=size), None, None


class _Recorded(nn.Module):
    """Stand-in for an ``nn.Conv2d`` or a non-overlapping ``nn.MaxPool2d`` (same parameters, same result) that runs
    :class:`_ConvInputGrad` / :class:`_MaxPool2dFn`. Their outputs are ordinary tensors: in-place ops on them
    (``out += shortcut``, ``nn.ReLU(inplace=True)``) work as on the native modules' outputs."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        m = self.module
        if type(m) is nn.Conv2d:
            y = F.conv2d(x.detach(), m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)
            return y.add_(_ConvInputGrad.apply(x, m.weight, y.shape, y.dtype, m.stride, m.padding, m.dilation,
                                               m.groups))
        return _MaxPool2dFn.apply(x, m.kernel_size, m.stride)[0]


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _recordable(m: nn.Module) -> bool:
    """Modules :func:`_record_layers` records: zero-padded ``nn.Conv2d``; ``nn.MaxPool2d`` with non-overlapping windows
    (kernel == stride, no padding, dilation 1, floor mode, no indices returned)."""
    if type(m) is nn.Conv2d:
        return m.padding_mode == "zeros" and not isinstance(m.padding, str)
    if type(m) is nn.MaxPool2d:
        return (_pair(m.kernel_size) == _pair(m.stride or m.kernel_size) and _pair(m.padding) == (0, 0)
                and _pair(m.dilation) == (1, 1) and not m.ceil_mode and not m.return_indices)
    return False


@contextlib.contextmanager
def _record_layers(model: nn.Module, convs: bool = True):
    """Wrap every non-overlapping ``nn.MaxPool2d`` of ``model`` and, with ``convs``, every zero-padded ``nn.Conv2d``
    in a :class:`_Recorded` stand-in; restored on exit."""
    kinds = ((nn.Conv2d,) if convs else ()) + (nn.MaxPool2d,)
    swapped = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent._modules.items()):
                if type(child) in kinds and _recordable(child):
                    parent._modules[name] = _Recorded(child)
                    swapped.append((parent, name, child))
        yield model
    finally:
        for parent, name, child in reversed(swapped):
            parent._modules[name] = child


def fast_softplus(model: nn.Module, beta: float = 50.0, threshold: float = 20.0):
    """Context manager: like :func:`artlib.models.softplus_relu` (every ``nn.ReLU`` becomes softplus-``beta``
    inside the block, restored on exit), with the fused :class:`SoftplusBeta` instead of ``nn.Softplus``.

    Example:
        >>> with fast_softplus(model, beta=50.0):
        ...     logits = model(x)
    """
    from artlib import models
    _check_beta(beta)
    return models.swap_relu(model, lambda relu: SoftplusBeta(beta, threshold))


@contextlib.contextmanager
def smooth_model(model: nn.Module, beta: Optional[float] = 50.0, impl: str = "fast", convs: bool = True):
    """The context in which ART's input gradients are taken: ReLU -> softplus-``beta`` (``impl="fast"``: the fused
    :class:`SoftplusBeta`, every ``nn.Conv2d`` run through a conv whose input gradient is an explicit transposed
    convolution and every non-overlapping ``nn.MaxPool2d`` through one whose input gradient is ``max_unpool2d``, for
    a cheaper double backward (CPU and GPU, see the module docstring); ``"reference"``:
    ``nn.Softplus`` through :func:`artlib.models.softplus_relu`, native convs). ``beta=None``: no activation swap (a
    smooth model). ``convs=False`` (``impl="fast"``) records only the max-pools: for first-order gradients (captum's
    methods), where the conv recording saves nothing. The model's modules are restored on exit; its parameters are
    never replaced. Hooks registered on a swapped module do not fire inside the block (the attribution code that
    swaps registers none on convs or pools)."""
    _check_beta(beta)
    _choice("impl", impl, _IMPLS)
    from artlib import models
    with contextlib.ExitStack() as stack:
        if impl == "fast":
            stack.enter_context(_record_layers(model, convs))
            if beta is not None:
                stack.enter_context(fast_softplus(model, beta))
        elif beta is not None:
            stack.enter_context(models.softplus_relu(model, beta))
        yield model


# ----------------------------------------------------------------------------------------------------------------------
# Input gradients, distances
# ----------------------------------------------------------------------------------------------------------------------
def input_gradients(logits: torch.Tensor, x: torch.Tensor, classes: list, create_graph: bool = True,
                    batched: bool = False) -> list:
    r"""Input gradients :math:`g^{c}(x) = \nabla_x f(x)_{c}` of the logits for one class per sample, for several
    class choices at once.

    ``g[k][b] = d logits[b, classes[k][b]] / d x[b]`` (with BatchNorm in train mode, the gradient of the batch sum,
    which also carries the cross-sample terms through the batch statistics). ``batched=True`` computes all of them in
    one batched vector-Jacobian product (``torch.autograd.grad(..., is_grads_batched=True)``), else one backward
    pass per class choice.

    Args:
        logits (Tensor): ``[B, K]``, computed from ``x``.
        x (Tensor): the input ``[B, ...]`` (requires grad).
        classes (list of Tensor): each ``[B]`` long.
        create_graph (bool): keep the graph (for double backprop). Default True.
        batched (bool): one batched VJP instead of ``len(classes)`` backward passes. Default False (measured
            slower on a CPU and on an H200 for ART's double backprop).

    Returns:
        list of Tensor shaped like ``x``, one per entry of ``classes``.
    """
    onehots = [F.one_hot(c, logits.shape[1]).to(logits.dtype) for c in classes]
    if batched and len(classes) > 1:
        (g,) = torch.autograd.grad(logits, x, grad_outputs=torch.stack(onehots), create_graph=create_graph,
                                   is_grads_batched=True)
        return list(g.unbind(0))
    out = []
    for k, oh in enumerate(onehots):
        (g,) = torch.autograd.grad(logits, x, grad_outputs=oh, create_graph=create_graph,
                                   retain_graph=create_graph or k < len(onehots) - 1)
        out.append(g)
    return out


def _up(t: torch.Tensor) -> torch.Tensor:
    """Half / bfloat16 (AMP) -> float32 for reductions; float32 and float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _flat(t: torch.Tensor, reduce_channels: Optional[str]) -> torch.Tensor:
    if reduce_channels == "mean":
        t = t.mean(1)
    elif reduce_channels == "abs_mean":
        t = t.abs().mean(1)
    return t.flatten(1)


def cosine_distance(g: torch.Tensor, x: torch.Tensor, reduce_channels: Optional[str] = None,
                    eps: float = 1e-30) -> torch.Tensor:
    r"""Per-sample cosine distance of ART Eq. 5: :math:`d(g, x) = 1 - \frac{g \cdot x}{\|g\|_2 \|x\|_2}`.

    Args:
        g (Tensor): gradients ``[B, C, H, W]``.
        x (Tensor): images ``[B, C, H, W]``.
        reduce_channels (str, optional): None (all entries), ``"mean"`` or ``"abs_mean"`` (channel mean of the
            values / of their absolute values, taken on both before the cosine; ART B.1 for CUB). Default None.
        eps (float): added under the square roots, so a zero gradient gives distance 1 and a finite derivative.

    Returns:
        Tensor ``[B]`` in ``[0, 2]``.
    """
    _choice("reduce_channels", reduce_channels, REDUCE_CHANNELS)
    gf, xf = _up(_flat(g, reduce_channels)), _up(_flat(x, reduce_channels))
    dot = (gf * xf).sum(1)
    norm = ((gf * gf).sum(1) + eps).sqrt() * ((xf * xf).sum(1) + eps).sqrt()
    return 1 - dot / norm


def runner_up(logits: torch.Tensor, y: torch.Tensor, lowest: bool = False) -> torch.Tensor:
    r""":math:`i^* = \arg\max_{i \neq y} f(x)_i` (ART Eq. 5), or :math:`\arg\min_{i \neq y}` with ``lowest=True``
    (Table 5's "i* = argmin(logit)" variant). Returns ``[B]`` long."""
    fill = float("inf") if lowest else float("-inf")
    masked = _up(logits.detach()).scatter(1, y[:, None], fill)
    return masked.argmin(1) if lowest else masked.argmax(1)


def _normalize_layer(model: nn.Module):
    from artlib import models
    for m in model.modules():
        if isinstance(m, models.Normalize):
            return m.mean, m.std
    raise ValueError("space='normalized' needs a model with an artlib.models.Normalize layer (build_model adds one)")


# ----------------------------------------------------------------------------------------------------------------------
# ART: Eq. 5 and the Table-5 variants
# ----------------------------------------------------------------------------------------------------------------------
def art_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: Optional[float] = 50.0, *,
              i_star: Optional[torch.Tensor] = None, variant: str = "art", x_clean: Optional[torch.Tensor] = None,
              reduce_channels: Optional[str] = None, space: str = "pixel", create_graph: bool = True,
              impl: str = "fast") -> dict:
    """:func:`art_loss` with its parts: a dict with ``loss`` ``[B]`` (the per-sample loss), ``logits`` ``[B, K]``
    (softplus network at ``x``), ``cos_y`` ``[B]`` (:math:`\\cos(g^y(x), x)`, detached: the spatial alignment the
    notebook plots), ``i_star`` ``[B]`` (the negative class used, or None for the variants without one). Same
    arguments as :func:`art_loss`."""
    y = _check_xy(x, y)
    _check_beta(beta)
    _choice("variant", variant, ART_VARIANTS)
    _choice("reduce_channels", reduce_channels, REDUCE_CHANNELS)
    _choice("space", space, _SPACES)
    _choice("impl", impl, _IMPLS)
    if variant == "eq2" and x_clean is None:
        raise ValueError("variant='eq2' (ART Eq. 2, ||g^y(x + delta) - g^y(x)||) needs x_clean, the unperturbed images")
    if i_star is not None:
        i_star = torch.as_tensor(i_star, device=x.device).long()
        if i_star.shape != y.shape or bool((i_star == y).any()):
            raise ValueError("i_star must be [B] class indices different from y")
    if not x.requires_grad:  # gradients are still taken w.r.t. x; the parameters keep their graph
        x = x.detach().requires_grad_(True)
    n = x.shape[0]
    inp = x
    if variant == "eq2":  # g^y at x + delta and at x from one forward / one VJP over the concatenated batch
        xc = x_clean.detach().requires_grad_(True)
        inp = torch.cat([x, xc])
    with smooth_model(model, beta, impl):
        logits_all = model(inp)
        logits = logits_all[:n]
        if variant in ("art", "argmin"):
            if i_star is None:
                i_star = runner_up(logits, y, lowest=(variant == "argmin"))
            g_y, g_i = input_gradients(logits, x, [y, i_star], create_graph, batched=False)
        elif variant == "eq2":
            g_all, = input_gradients(logits_all, inp, [torch.cat([y, y])], create_graph)
            g_y, g_c = g_all[:n], g_all[n:]
            i_star = None
        else:
            g_y, = input_gradients(logits, x, [y], create_graph)
            i_star = None
    img = x
    if space == "normalized":  # the authors' code: cosine between (x - m) / s and the gradient w.r.t. it, g * s
        mean, std = _normalize_layer(model)
        img = (x - mean) / std
        g_y = g_y * std
        if variant in ("art", "argmin"):
            g_i = g_i * std
    d_y = cosine_distance(g_y, img, reduce_channels)
    if variant in ("art", "argmin"):
        d_i = cosine_distance(g_i, img, reduce_channels)
        loss = F.softplus(-(d_i - d_y))  # log(1 + exp(-(d(g^{i*}, x) - d(g^y, x)))), Eq. 5, overflow-safe
    elif variant == "eq4_cos":
        loss = d_y
    elif variant == "eq4_l2":
        loss = (_up(_flat(g_y, reduce_channels)) - _up(_flat(img, reduce_channels))).norm(dim=1)
    else:  # eq2
        loss = _up((g_y - g_c).flatten(1)).norm(dim=1)
    return {"loss": loss, "logits": logits, "cos_y": (1 - d_y).detach(), "i_star": i_star}


def art_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, beta: Optional[float] = 50.0, *,
             i_star: Optional[torch.Tensor] = None, variant: str = "art", x_clean: Optional[torch.Tensor] = None,
             reduce_channels: Optional[str] = None, space: str = "pixel", create_graph: bool = True,
             impl: str = "fast") -> torch.Tensor:
    r"""Per-sample attribution loss :math:`L_{attr}(x, y)` of ART (Singh et al., ECCV 2020), Eq. 5:

    .. math::
        L_{attr}(x, y) = \log\Big(1 + \exp\big(-(d(g^{i^*}(x), x) - d(g^y(x), x))\big)\Big), \quad
        d(g, x) = 1 - \frac{g \cdot x}{\|g\|_2 \|x\|_2}, \quad i^* = \arg\max_{i \neq y} f(x)_i,

    a soft-margin triplet loss with the image as anchor, the true-class input gradient :math:`g^y = \nabla_x f(x)_y`
    as positive and the runner-up class's :math:`g^{i^*}` as negative. The gradients are of the **logits** of the
    network with every ReLU replaced by :math:`\mathrm{softplus}_\beta` (Sec. 3.2: ReLU networks have zero second
    derivatives), taken with ``create_graph=True`` so that the loss can be differentiated w.r.t. the parameters
    (outer loss, Eq. 6) and w.r.t. ``x`` (inner maximisation, Algorithm 1 line 6).

    Choices the paper leaves open, and what this function does:

    - **Which image enters the cosine**: the image the gradient is taken at, ``x`` as passed. In training that is
      the perturbed :math:`\tilde x` (Eq. 6 and Algorithm 1 write :math:`L_{attr}(\tilde x, y)`, i.e.
      :math:`d(g(\tilde x), \tilde x)`, the form of the bound in Eq. 4), so the inner ascent also moves the anchor.
      The cosine is in pixel space ``[0, 1]`` (the paper's :math:`x`); ``space="normalized"`` takes it between the
      normalised image :math:`(x - m)/s` and the gradient w.r.t. it, :math:`g \cdot s`, as the authors' code does.
    - **Which logits pick i\***: ``i_star`` when given. Algorithm 1 (line 10) uses :math:`f(x)`, the clean image
      through the ReLU network; :func:`artlib.train.train` computes that once per batch and passes it here (also to
      the inner steps, whose :math:`L_{attr}(\tilde x, y)` needs an :math:`i^*` before line 10 is reached).
      When None, :math:`i^*` is the runner-up of the softplus logits at ``x`` itself (the authors' code, which
      recomputes it at the perturbed image).
    - **BatchNorm mode**: left as the caller set it (this function never changes train/eval mode). The trainer keeps
      the model in train mode for the whole step, as the authors' code does; in train mode the gradient of the
      batch sum of logits includes cross-sample terms through the batch statistics (also as in their code).
    - **Reduction**: per sample; the caller averages (the authors' code uses a batch mean).

    Variants (``variant``), ART Table 5 / appendix A.1 (all to be minimised; the inner loop maximises them):

    - ``"art"``: Eq. 5 (default);
    - ``"argmin"``: Eq. 5 with :math:`i^* = \arg\min_{i \neq y} f(x)_i`;
    - ``"eq4_cos"``: :math:`d(g^y(x), x)`, the cosine form of the bound of Eq. 4;
    - ``"eq4_l2"``: :math:`\|g^y(x) - x\|_2` (Eq. 4 with the l2 distance);
    - ``"eq2"``: :math:`\|g^y(x) - g^y(x_{clean})\|_2` (Eq. 2, the attribution change itself; needs ``x_clean``).

    Args:
        model (nn.Module): classifier taking images in ``[0, 1]``; its ``nn.ReLU`` modules are swapped during the
            call (restored afterwards).
        x (Tensor): images ``[B, C, H, W]``. When it requires grad the loss stays differentiable w.r.t. it.
        y (Tensor): labels ``[B]``.
        beta (float, optional): softplus :math:`\beta` (ART: 50 in all experiments). None: no swap (smooth model).
        i_star (Tensor, optional): negative classes ``[B]`` (must differ from ``y``). Default: from the logits at
            ``x`` (see above).
        variant (str): one of :data:`ART_VARIANTS`. Default ``"art"``.
        x_clean (Tensor, optional): unperturbed images, only for ``variant="eq2"``.
        reduce_channels (str, optional): None, ``"mean"`` (ART B.1, CUB: "mean over channels of images and
            gradients") or ``"abs_mean"`` (the authors' WSOL code: channel mean of absolute values). Default None.
        space (str): ``"pixel"`` (default, the paper) or ``"normalized"`` (the authors' code).
        create_graph (bool): keep the graph of the input gradients (needed for any gradient of the loss). Default
            True.
        impl (str): ``"fast"`` (:class:`SoftplusBeta`) or ``"reference"`` (``nn.Softplus`` through
            :func:`artlib.models.softplus_relu`). Same values and derivatives. Default ``"fast"``.

    Returns:
        Tensor ``[B]``: :math:`L_{attr}` per sample (``log 2`` when both distances are equal).

    Example:
        >>> model = models.build_model("small-cnn", 10)
        >>> x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> loss = F.cross_entropy(model(x), y) + 0.5 * losses.art_loss(model, x, y, beta=50.0).mean()
        >>> loss.backward()     # reaches the parameters through the input gradients (double backprop)
    """
    return art_terms(model, x, y, beta, i_star=i_star, variant=variant, x_clean=x_clean,
                     reduce_channels=reduce_channels, space=space, create_graph=create_graph, impl=impl)["loss"]


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Project onto the l-inf ball of radius ``eps`` around ``x`` and onto ``[0, 1]`` (Algorithm 1 line 7)."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0, 1)


def _check_attack(eps, step_size, steps) -> None:
    if not (isinstance(eps, (int, float)) and eps >= 0):
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if not (isinstance(step_size, (int, float)) and step_size >= 0):
        raise ValueError(f"step_size must be >= 0, got {step_size!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")


def art_perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255, step_size: float = 1.5 / 255,
                steps: int = 3, beta: Optional[float] = 50.0, *, i_star: Optional[torch.Tensor] = None,
                variant: str = "art", reduce_channels: Optional[str] = None, space: str = "pixel",
                with_ce: bool = False, noise: Optional[torch.Tensor] = None, impl: str = "fast",
                topk: Optional[int] = None) -> torch.Tensor:
    r"""Inner maximisation of ART, Algorithm 1 lines 4-8: :math:`\tilde x = x + U(-\epsilon, \epsilon)`, then
    ``steps`` (= :math:`a`) signed-gradient ascent steps of size :math:`\alpha` on :math:`L_{attr}(\tilde x, y)`,
    each followed by the projection onto the l-inf ball around ``x`` and onto ``[0, 1]`` (the random start is
    clamped to ``[0, 1]`` too). With ``with_ce=True`` the ascent is on :math:`L_{attr} + L_{ce}` (appendix C,
    "Using L_attr + L_ce to compute perturbations"; the cross-entropy there is taken on the softplus logits the
    attribution loss computes anyway).

    The model's train/eval mode is left as it is (the trainer uses train mode, as the authors' code does).

    Args:
        model, x, y, beta, i_star, variant, reduce_channels, space, impl: as in :func:`art_loss`
            (``variant="eq2"`` uses ``x`` as the clean image).
        eps (float): l-inf radius :math:`\epsilon`. Default 8/255 (ART A.3; CUB 2/255).
        step_size (float): :math:`\alpha`. Default 1.5/255 (ART A.3).
        steps (int): :math:`a`. Default 3.
        with_ce (bool): ascend :math:`L_{attr} + L_{ce}` (appendix C). Default False.
        noise (Tensor, optional): ``U(0, 1)`` draws shaped like ``x`` for the random start (the trainer draws them
            for the whole global batch so that DDP and single-process runs match); default ``torch.rand_like(x)``.
        topk (int, optional): move only the ``topk`` entries (per sample, over ``C*H*W``) with the largest
            :math:`|g^y|` of the ReLU network at the random start (:func:`topk_entry_mask`, in the space of
            ``space``): the authors' released attack, see :func:`art_perturb_official`. Default None (all entries,
            the paper).

    Returns:
        Tensor shaped like ``x``, detached, in ``[0, 1]`` and within ``eps`` of ``x`` (l-inf).

    Example:
        >>> x_t = art_perturb(model, x, y, eps=8/255, step_size=1.5/255, steps=3)
        >>> loss = F.cross_entropy(model(x_t), y) + 0.5 * art_loss(model, x_t, y).mean()   # Eq. 6
    """
    y = _check_xy(x, y)
    _check_attack(eps, step_size, steps)
    x = x.detach()
    u = torch.rand_like(x) if noise is None else noise.to(x)
    x_t = (x + (2 * u - 1) * eps).clamp_(0, 1)
    mask = None if topk is None else topk_entry_mask(model, x_t, y, topk, space)
    for _ in range(steps):
        x_t.requires_grad_(True)
        with torch.enable_grad():
            t = art_terms(model, x_t, y, beta, i_star=i_star, variant=variant, x_clean=x,
                          reduce_channels=reduce_channels, space=space, impl=impl)
            obj = t["loss"].sum()
            if with_ce:
                obj = obj + F.cross_entropy(_up(t["logits"]), y, reduction="sum")
            (grad,) = torch.autograd.grad(obj, x_t)
        with torch.no_grad():
            if mask is not None:
                grad = grad * mask  # sign(0) = 0: entries outside the top-k keep their random start
            x_t = project_linf(x_t.detach() + step_size * grad.sign(), x, eps)
    return x_t.detach()


# ----------------------------------------------------------------------------------------------------------------------
# ART: the authors' released training code (setting "official")
# ----------------------------------------------------------------------------------------------------------------------
#: Default ``topk`` of the released inner attack per dataset (``cifar/saliency_pgd.py``: 1000 of 3072 entries;
#: ``WSOL_CUB``: 15000 of 3 x 224 x 224). Other datasets: 1000, capped at the number of entries.
OFFICIAL_TOPK = {"cifar10": 1000, "cub200": 15000}


def art_terms_official(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                       beta: Optional[float] = 50.0, channel_mean: bool = False, impl: str = "fast") -> dict:
    r""":func:`art_loss_official` per row: a dict with ``loss`` ``[2B]`` (rows ``0..B-1``: the clean images,
    ``B..2B-1``: the perturbed ones; their mean is :func:`art_loss_official`), ``logits`` ``[2B, K]`` (softplus
    network), ``cos_y`` ``[2B]`` (:math:`\cos(x_j, g^y_j)` of each row with its own gradient, detached, in the
    normalised space), ``i_star`` ``[2B]``, ``d_ap`` and ``d_an`` ``[2B]`` (the mined distances). Same arguments as
    :func:`art_loss_official`."""
    y = _check_xy(x, y)
    _check_beta(beta)
    _choice("impl", impl, _IMPLS)
    if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
        raise ValueError(f"x_adv must be shaped like x {tuple(x.shape)}, got "
                         f"{tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__}")
    if channel_mean not in (True, False):
        raise ValueError(f"channel_mean must be True or False, got {channel_mean!r}")
    B = x.shape[0]
    xx = torch.cat([x, x_adv])
    if not xx.requires_grad:  # gradients are taken w.r.t. the inputs; the parameters keep their graph
        xx = xx.detach().requires_grad_(True)
    yy = torch.cat([y, y])
    with smooth_model(model, beta, impl), torch.enable_grad():  # input gradients are needed even under no_grad
        logits = model(xx)
        i_star = runner_up(logits, yy)  # at each row's own input (softplus logits), as the released code
        g_y, g_i = input_gradients(logits, xx, [yy, i_star], create_graph=True)
    mean, std = _normalize_layer(model)
    img = (xx - mean) / std              # the normalised image ...
    g_y, g_i = g_y * std, g_i * std      # ... and the gradients w.r.t. it (chain rule through the Normalize layer)
    rc = "abs_mean" if channel_mean else None
    partner = lambda t: t.roll(B, dims=0)  # row j's other copy of the same original sample: j + B (mod 2B)
    d_y_own, d_y_cross = cosine_distance(g_y, img, rc), cosine_distance(partner(g_y), img, rc)
    d_i_own, d_i_cross = cosine_distance(g_i, img, rc), cosine_distance(partner(g_i), img, rc)
    d_ap = torch.max(d_y_own, d_y_cross)   # hardest positive: the farther true-class gradient
    d_an = torch.min(d_i_own, d_i_cross)   # hardest negative: the closer runner-up gradient
    loss = F.softplus(-(d_an - d_ap))      # nn.SoftMarginLoss with target 1, per row
    return {"loss": loss, "logits": logits, "cos_y": (1 - d_y_own).detach(), "i_star": i_star,
            "d_ap": d_ap, "d_an": d_an}


def art_loss_official(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                      beta: Optional[float] = 50.0, channel_mean: bool = False, *, impl: str = "fast") -> torch.Tensor:
    r"""The attribution loss of the ART authors' released training code (``cifar/loss_art.py`` and
    ``cifar/cifar_robust_train.py``, ``papers/art_official_code_facts.md``): Eq. 5 on the clean and the perturbed
    batch together, with hard-example mining per original sample. This is ``setting="official"`` of
    :class:`artlib.train.TrainConfig`; :func:`art_loss` is the paper's Eq. 5 (``setting="paper"``).

    With the ``2B`` rows :math:`z = [x; x_{adv}]` (row :math:`j` and row :math:`j \pm B` come from the same original
    sample), :math:`g^y_k` and :math:`g^{i^*}_k` the input gradients of row :math:`k`'s true and runner-up logits at
    its own input (ReLU -> softplus-:math:`\beta`, :math:`i^*_k = \arg\max_{i \neq y} f(z_k)_i` of those softplus
    logits), images and gradients taken in the model's **normalised** input space (after its ``Normalize``: image
    :math:`(z - m)/s`, gradient :math:`g \cdot s`) and flattened per row:

    .. math::
        d_{ap}(j) = \max_{k \in \{j, j \pm B\}} \big(1 - \cos(z_j, g^y_k)\big), \quad
        d_{an}(j) = \min_{k \in \{j, j \pm B\}} \big(1 - \cos(z_j, g^{i^*}_k)\big), \quad
        L = \frac{1}{2B} \sum_{j=1}^{2B} \log\big(1 + e^{-(d_{an}(j) - d_{ap}(j))}\big).

    The cross pairs (a clean image against the perturbed copy's gradient and vice versa) enter both the max and the
    min. Differences from the paper's Eq. 5 / Algorithm 1: the clean batch enters the loss; the mining; the cosine in
    normalised space (paper: pixel space); :math:`i^*` recomputed at each input (paper: from the clean image). The
    released recipe adds the cross-entropy of the **perturbed** images only: ``CE(x_adv) + 0.5 * L``.

    BatchNorm: the ``2B`` rows go through the model as one batch, in the mode the caller set (the released code
    trains in train mode throughout).

    Args:
        model (nn.Module): classifier on ``[0, 1]`` images with an :class:`artlib.models.Normalize` layer
            (:func:`artlib.models.build_model` adds one); its ReLUs are swapped for the call (restored after).
        x (Tensor): clean images ``[B, C, H, W]``.
        x_adv (Tensor): perturbed images, same shape (from :func:`art_perturb_official`).
        y (Tensor): labels ``[B]``.
        beta (float, optional): softplus :math:`\beta`. Default 50 (released code).
        channel_mean (bool): the CUB variant (``WSOL_CUB``): :math:`|z|` and :math:`|g|` averaged over channels before
            the cosine. Default False (CIFAR-10: all ``C*H*W`` entries).
        impl (str): ``"fast"`` or ``"reference"``, as in :func:`art_loss`.

    Returns:
        Tensor: scalar loss, differentiable w.r.t. the parameters (double backprop through the input gradients,
        ``create_graph=True``) and w.r.t. ``x`` / ``x_adv`` when they require grad.

    Example:
        >>> x_adv = art_perturb_official(model, x, y, eps=8/255, step_size=5/255, steps=3, topk=1000)
        >>> loss = F.cross_entropy(model(x_adv), y) + 0.5 * art_loss_official(model, x, x_adv, y)
        >>> loss.backward()
    """
    return art_terms_official(model, x, x_adv, y, beta, channel_mean, impl)["loss"].mean()


def topk_entry_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, topk: int,
                    space: str = "normalized") -> torch.Tensor:
    r"""``{0, 1}`` mask shaped like ``x`` of the ``topk`` entries (over ``C*H*W``, per sample) with the largest
    :math:`|\nabla_x f(x)_y|` of the ReLU network as it is (the released attack's selection, taken at its random start;
    ``space="normalized"``: the gradient w.r.t. the normalised image, :math:`g \cdot s`, as the released code sees it;
    ties to the lower index). The model's mode is left as it is."""
    y = _check_xy(x, y)
    _choice("space", space, _SPACES)
    n = x[0].numel()
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= n:
        raise ValueError(f"topk must be an int in [1, {n}] (entries per sample), got {topk!r}")
    with torch.enable_grad():
        z = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(_up(model(z)).gather(1, y[:, None]).sum(), z)
    if space == "normalized":
        g = g * _normalize_layer(model)[1]
    idx = torch.sort(g.abs().flatten(1), dim=1, descending=True, stable=True).indices[:, :topk]
    return torch.zeros_like(g.flatten(1)).scatter_(1, idx, 1.0).view_as(x)


def art_perturb_official(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255,
                         step_size: float = 5 / 255, steps: int = 3, beta: Optional[float] = 50.0, *,
                         topk: int = 1000, channel_mean: bool = False, noise: Optional[torch.Tensor] = None,
                         impl: str = "fast") -> torch.Tensor:
    r"""The inner maximisation of the ART authors' released code (``cifar/saliency_pgd.py``,
    ``topk_alignment_saliency_attack``; ``papers/art_official_code_facts.md``): uniform random start in
    :math:`[-\epsilon, \epsilon]` clamped to ``[0, 1]``; the ``topk`` entries with the largest :math:`|g^y|` (ReLU
    network, normalised space) at the random start are fixed (:func:`topk_entry_mask`); then ``steps`` signed ascent
    steps of size ``step_size`` on :math:`L_{attr}` (Eq. 5 in the normalised space, :math:`i^*` from the softplus
    logits at the perturbed image) that move **only those entries**, each followed by the projection onto the
    :math:`\epsilon`-ball and ``[0, 1]``. It is :func:`art_perturb` with ``topk``, ``space="normalized"`` and
    ``i_star=None``; the paper (A.3) uses all entries and a 1.5/255 step.

    Args:
        model, x, y, eps, steps, beta, noise, impl: as in :func:`art_perturb`.
        step_size (float): Default 5/255 (released CIFAR-10 code; CUB: 1.5/255).
        topk (int): entries per sample the ascent may move. Default 1000 (CIFAR-10; CUB 15000, see
            :data:`OFFICIAL_TOPK`).
        channel_mean (bool): the CUB variant of the cosine (``reduce_channels="abs_mean"``). Default False.

    Returns:
        Tensor shaped like ``x``, detached; it differs from the random start only on the top-k entries.
    """
    return art_perturb(model, x, y, eps, step_size, steps, beta, reduce_channels="abs_mean" if channel_mean else None,
                       space="normalized", noise=noise, impl=impl, topk=topk)

# ----------------------------------------------------------------------------------------------------------------------
# RAR: IG-NORM and IG-SUM-NORM
# ----------------------------------------------------------------------------------------------------------------------
def integrated_gradients_path(model: nn.Module, x: torch.Tensor, x_end: torch.Tensor, y: torch.Tensor,
                              steps: int = 50, create_graph: bool = True) -> torch.Tensor:
    r"""Integrated Gradients of the per-example cross-entropy loss along the straight path from ``x`` (the
    baseline) to ``x_end``, right Riemann sum, as RAR trains with (Chen et al. 2019, Sec. 3-4; their code
    ``model.py``):

    .. math:: IG(x, x') = (x' - x) \odot \frac{1}{m}\sum_{k=1}^{m} \nabla_z \ell(f(z_k), y), \quad
              z_k = x + \tfrac{k}{m}(x' - x).

    All ``m`` path points go through the model as one batch of ``m * B`` images. By completeness,
    ``IG.sum() ~ CE(x') - CE(x)``.

    Args:
        model (nn.Module): classifier (its mode is left as it is).
        x (Tensor): baseline images ``[B, C, H, W]`` (the clean batch).
        x_end (Tensor): end points ``[B, C, H, W]`` (the perturbed batch); gradients flow to it when it requires grad.
        y (Tensor): labels ``[B]``.
        steps (int): :math:`m`. Default 50 (RAR's training setting).
        create_graph (bool): keep the graph (needed to differentiate the IG w.r.t. parameters or ``x_end``).

    Returns:
        Tensor ``[B, C, H, W]``.
    """
    y = _check_xy(x, y)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    B = x.shape[0]
    alphas = torch.arange(1, steps + 1, device=x.device, dtype=x.dtype).div_(steps).view(steps, 1, 1, 1, 1)
    z = (x.unsqueeze(0) + alphas * (x_end - x).unsqueeze(0)).reshape(steps * B, *x.shape[1:])
    if not z.requires_grad:
        z.requires_grad_(True)
    ce = F.cross_entropy(_up(model(z)), y.repeat(steps), reduction="sum")
    (grads,) = torch.autograd.grad(ce, z, create_graph=create_graph)
    return (x_end - x) * grads.view(steps, *x.shape).mean(0)


def ig_norm(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, steps: int = 50,
            create_graph: bool = True) -> torch.Tensor:
    r"""IG-NORM regulariser of RAR (Chen et al., NeurIPS 2019; ART's baseline [13]): per sample
    :math:`\|IG(x, x')\|_1`, the l1 norm of the Integrated Gradients of the cross-entropy loss from the clean image
    ``x`` to ``x_adv`` (:func:`integrated_gradients_path`). The training objective is
    :math:`\ell(x, y) + \lambda \|IG(x, x')\|_1` with :math:`x'` from :func:`ig_perturb`.

    RAR's TensorFlow code sums over the batch (cross-entropy and the l1 norm); artlib averages both over the batch,
    which is the same objective divided by the batch size.

    Returns:
        Tensor ``[B]``.

    Example:
        >>> x_adv = ig_perturb(model, x, y, eps=8/255, step_size=2/255, steps=7)
        >>> loss = (F.cross_entropy(model(x), y, reduction="none") + 1.0 * ig_norm(model, x, x_adv, y)).mean()
    """
    return integrated_gradients_path(model, x, x_adv, y, steps, create_graph).flatten(1).abs().sum(1)


def ig_sum_norm(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, lam: float = 1.0,
                steps: int = 50, create_graph: bool = True) -> torch.Tensor:
    r"""IG-SUM-NORM objective of RAR (Chen et al. 2019): per sample
    :math:`\ell(x', y) + \lambda \|IG(x, x')\|_1` — the adversarial cross-entropy plus the IG regulariser
    (RAR's ``'adv_ar'`` objective; their config calls :math:`\lambda` "beta"). Returns ``[B]``."""
    y = _check_xy(x, y)
    ce = F.cross_entropy(_up(model(x_adv)), y, reduction="none")
    return ce + lam * ig_norm(model, x, x_adv, y, steps, create_graph)


def ig_perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255, step_size: float = 2 / 255,
               steps: int = 7, ig_steps: int = 5, objective: str = "ig_norm", lam: float = 1.0,
               noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""RAR's inner maximisation (``pgd_attack.py``, ``LinfPGDAttack``): l-inf PGD with random start on
    :math:`\|IG(x, x')\|_1` (``objective="ig_norm"``) or on :math:`\ell(x', y) + \lambda \|IG(x, x')\|_1`
    (``"ig_sum_norm"``), with a cheaper IG of ``ig_steps`` path points (RAR: m / approx_factor = 50 / 10 = 5 on GTSRB
    and Flower, 10 on MNIST).

    Difference from RAR's code: the random start is clamped to ``[0, 1]`` (RAR clips only after the first step).

    Returns:
        Tensor shaped like ``x``, detached, in ``[0, 1]`` and within ``eps`` of ``x``.
    """
    _choice("objective", objective, ("ig_norm", "ig_sum_norm"))
    y = _check_xy(x, y)
    _check_attack(eps, step_size, steps)
    x = x.detach()
    u = torch.rand_like(x) if noise is None else noise.to(x)
    x_adv = (x + (2 * u - 1) * eps).clamp_(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            if objective == "ig_norm":
                obj = ig_norm(model, x, x_adv, y, ig_steps).sum()
            else:
                obj = ig_sum_norm(model, x, x_adv, y, lam, ig_steps).sum()
            (grad,) = torch.autograd.grad(obj, x_adv)
        with torch.no_grad():
            x_adv = project_linf(x_adv.detach() + step_size * grad.sign(), x, eps)
    return x_adv.detach()
