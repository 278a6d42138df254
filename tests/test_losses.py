"""artlib.losses: ART's L_attr (Eq. 5) against a per-sample transcription of the equation, the fast path against the
reference path (values and first / second derivatives, float64), the fused softplus against nn.Softplus, second-order
terms reaching the parameters, the inner maximisation's eps-ball / [0, 1] contract, RAR's IG regularisers
(completeness), model-state hygiene and bad input."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from artlib import losses, models

# One thread: these are many small ops, and on a shared 2-core machine a 2-thread OpenMP pool waits on a busy core
# at every op (this file takes ~3 s with 1 thread and ~50 s with 2 under a load of 4).
torch.set_num_threads(1)


class TinyNet(nn.Module):
    """conv(3->4) - ReLU - conv(4->4, stride 2) - ReLU - flatten - linear(->5): small for exact float64 checks."""

    def __init__(self, hw=6):
        super().__init__()
        self.c1, self.r1 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
        self.c2, self.r2 = nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU()
        self.fc = nn.Linear(4 * ((hw + 1) // 2) ** 2, 5)

    def forward(self, x):
        return self.fc(self.r2(self.c2(self.r1(self.c1(x)))).flatten(1))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = TinyNet().double()
    x = torch.rand(6, 3, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    return model, x, y


def _eq5_transcription(model, x, y, beta):
    """ART Eq. 5 written out per sample, with nothing shared: softplus network, i* = argmax_{i != y} f(x)_i,
    g = d f(x)_c / dx, d(g, x) = 1 - g.x / (|g| |x|), L = log(1 + exp(-(d(g^i*, x) - d(g^y, x))))."""
    out = []
    with models.softplus_relu(model, beta):
        for b in range(x.shape[0]):
            xb = x[b:b + 1].clone().requires_grad_(True)
            logits = model(xb)[0]
            others = [i for i in range(logits.shape[0]) if i != int(y[b])]
            i_star = max(others, key=lambda i: float(logits[i].detach()))
            g_y, = torch.autograd.grad(logits[int(y[b])], xb, retain_graph=True)
            g_i, = torch.autograd.grad(logits[i_star], xb)
            xd = xb.detach()
            d = lambda g: 1 - float((g * xd).sum()) / (float(g.norm()) * float(xd.norm()))  # noqa: E731
            out.append(math.log(1 + math.exp(-(d(g_i) - d(g_y)))))
    return torch.tensor(out, dtype=torch.float64)


def _grads(model, x, y, **kw):
    """(loss [B], d sum(loss) / dx, d sum(loss) / d params) of art_loss."""
    x = x.clone().requires_grad_(True)
    loss = losses.art_loss(model, x, y, **kw)
    gx, *gp = torch.autograd.grad(loss.sum(), [x] + list(model.parameters()), allow_unused=True)
    gp = [torch.zeros_like(p) if g is None else g for p, g in zip(model.parameters(), gp)]
    return loss.detach(), gx, gp


# ----------------------------------------------------------------------------------------------------------------------
# Eq. 5
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_art_loss_equals_direct_transcription_of_eq5(tiny, impl):
    model, x, y = tiny
    ref = _eq5_transcription(model, x, y, beta=50.0)
    got = losses.art_loss(model, x, y, beta=50.0, impl=impl)
    assert got.shape == (6,)
    assert torch.allclose(got.detach(), ref, rtol=0, atol=1e-12), (got, ref)
    assert not torch.allclose(ref, torch.full_like(ref, math.log(2)))  # the distances do differ


def test_art_loss_with_given_i_star_and_perturbed_image_in_cosine(tiny):
    model, x, y = tiny
    i_star = (y + 2) % 5
    loss = losses.art_loss(model, x, y, i_star=i_star, impl="reference").detach()
    with models.softplus_relu(model, 50.0):
        xr = x.clone().requires_grad_(True)
        logits = model(xr)
        g_y, = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), xr, retain_graph=True)
        g_i, = torch.autograd.grad(logits.gather(1, i_star[:, None]).sum(), xr)
    d = lambda g: 1 - F.cosine_similarity(g.flatten(1), x.flatten(1), dim=1, eps=0)  # noqa: E731
    assert torch.allclose(loss, F.softplus(d(g_y) - d(g_i)).detach(), atol=1e-12)


@pytest.mark.parametrize("kw", [dict(), dict(variant="argmin"), dict(variant="eq4_cos"), dict(variant="eq4_l2"),
                                dict(variant="eq2"), dict(reduce_channels="mean"), dict(reduce_channels="abs_mean"),
                                dict(space="normalized"), dict(beta=5.0)])
def test_fast_path_equals_reference_values_and_derivatives(kw):
    """impl='fast' (fused softplus, batched VJP) == impl='reference' (nn.Softplus, two backward passes) in float64:
    the loss, its input gradient (inner maximisation) and its parameter gradients (outer loss, double backprop)."""
    torch.manual_seed(1)
    model = models.build_model("small-cnn", 10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)).double()
    x = torch.rand(4, 3, 12, 12, dtype=torch.float64)
    y = torch.tensor([0, 3, 7, 9])
    if kw.get("variant") == "eq2":
        kw = dict(kw, x_clean=(x + 0.01).clamp(0, 1))
    a = _grads(model, x, y, impl="reference", **kw)
    b = _grads(model, x, y, impl="fast", **kw)
    assert torch.allclose(a[0], b[0], rtol=1e-12, atol=1e-14)
    assert torch.allclose(a[1], b[1], rtol=1e-9, atol=1e-14 * a[1].abs().max())
    for ga, gb in zip(a[2], b[2]):
        assert torch.allclose(ga, gb, rtol=1e-9, atol=1e-12 * max(1.0, float(ga.abs().max())))
    assert sum(float(g.abs().sum()) for g in a[2]) > 0


def test_variants_match_their_equations(tiny):
    model, x, y = tiny
    with models.softplus_relu(model, 50.0):
        xr = x.clone().requires_grad_(True)
        logits = model(xr)
        g_y, = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), xr)
        xc = (x * 0.9).requires_grad_(True)
        g_c, = torch.autograd.grad(model(xc).gather(1, y[:, None]).sum(), xc)
    cos = F.cosine_similarity(g_y.flatten(1), x.flatten(1), dim=1, eps=0)
    v = lambda **k: losses.art_loss(model, x, y, **k).detach()  # noqa: E731
    assert torch.allclose(v(variant="eq4_cos"), 1 - cos, atol=1e-12)
    assert torch.allclose(v(variant="eq4_l2"), (g_y - x).flatten(1).norm(dim=1), atol=1e-12)
    assert torch.allclose(v(variant="eq2", x_clean=x * 0.9), (g_y - g_c).flatten(1).norm(dim=1), atol=1e-12)
    lowest = losses.runner_up(logits, y, lowest=True)
    assert torch.allclose(v(variant="argmin"), v(i_star=lowest), atol=1e-14)
    assert not torch.allclose(v(variant="argmin"), v())


def test_art_terms_reports_cos_and_i_star(tiny):
    model, x, y = tiny
    t = losses.art_terms(model, x, y)
    assert set(t) == {"loss", "logits", "cos_y", "i_star"}
    assert t["cos_y"].shape == (6,) and not t["cos_y"].requires_grad
    assert bool((t["i_star"] != y).all()) and bool((t["cos_y"].abs() <= 1).all())
    assert torch.equal(t["i_star"], losses.runner_up(t["logits"], y))


def test_runner_up_excludes_the_label():
    logits = torch.tensor([[5.0, 4.0, 1.0], [0.0, 9.0, 3.0], [2.0, 2.5, 3.0]])
    y = torch.tensor([0, 1, 2])
    assert losses.runner_up(logits, y).tolist() == [1, 2, 1]
    assert losses.runner_up(logits, y, lowest=True).tolist() == [2, 0, 0]


# ----------------------------------------------------------------------------------------------------------------------
# Fused softplus
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [50.0, 3.0])
def test_fused_softplus_matches_nn_softplus_to_second_order(beta):
    x = torch.cat([torch.linspace(-2, 2, 301), torch.tensor([0.0, 0.399, 0.4, 0.401, 30.0, -30.0])]).double()
    x = x.requires_grad_(True)
    outs = []
    for f in (lambda t: F.softplus(t, beta, 20.0), lambda t: losses.softplus_beta(t, beta, 20.0)):
        y = f(x)
        g, = torch.autograd.grad((y * torch.cos(x)).sum(), x, create_graph=True)
        h, = torch.autograd.grad((g ** 2).sum(), x)
        outs.append((y.detach(), g.detach(), h))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)
    assert outs[0][2].abs().max() > 0


def test_fused_softplus_third_derivative_goes_through_the_recorded_sigmoid():
    """The recorded sigmoid's backward uses its saved output: differentiating that backward once more (a third
    derivative of softplus) must still give nn.Softplus's values."""
    x = torch.linspace(-0.3, 0.3, 61, dtype=torch.float64).requires_grad_(True)
    res = []
    for f in (lambda t: F.softplus(t, 50.0, 20.0), lambda t: losses.softplus_beta(t, 50.0, 20.0)):
        d1, = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        d2, = torch.autograd.grad(d1.sum(), x, create_graph=True)
        d3, = torch.autograd.grad((d2 * torch.sin(x)).sum(), x)
        res.append((d1.detach(), d2.detach(), d3))
    for a, b in zip(*res):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert res[0][2].abs().max() > 1.0


def test_fused_softplus_float32_accuracy():
    """float32 on a CPU (log(1 + e) instead of the slow log1p): values within float32 rounding + 2e-9, derivatives
    to float32 rounding, exactly relu(x) beyond |beta x| > 17, no denormals."""
    x = torch.cat([torch.linspace(-3, 3, 20001), torch.tensor([0.0, -2.0, -1.0e3, 1.0e3])])
    exact = F.softplus(x.double(), 50.0, 20.0)
    xr = x.clone().requires_grad_(True)
    y = losses.softplus_beta(xr, 50.0)
    g, = torch.autograd.grad(y.sum(), xr, create_graph=True)
    h, = torch.autograd.grad(g.sum(), xr)
    assert torch.allclose(y.detach().double(), exact, rtol=2.4e-7, atol=2e-9)   # float32 rounding + 1.2e-9
    assert torch.allclose(g.double(), torch.sigmoid(50.0 * x.double()), atol=1e-6)
    s = torch.sigmoid(50.0 * x.double())
    assert torch.allclose(h.double(), 50.0 * s * (1 - s), atol=1e-4 * 12.5)
    far = x.abs() * 50 > 17
    assert torch.equal(y.detach()[far], torch.relu(x)[far])
    tiny = torch.finfo(torch.float32).tiny
    assert not bool(((y.detach() != 0) & (y.detach().abs() < tiny)).any())


def test_fused_softplus_inside_batched_vjp():
    """torch.autograd.grad(is_grads_batched=True) through the fused softplus keeps the double-backward graph."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    W = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    res = []
    for act in (lambda t: F.softplus(t, 5.0), lambda t: losses.softplus_beta(t, 5.0)):
        for batched in (False, True):
            h = act(x) @ W
            gs = losses.input_gradients(h, x, [torch.tensor([0, 1, 2]), torch.tensor([3, 3, 3])], batched=batched)
            res.append(torch.autograd.grad(sum((g ** 2).sum() for g in gs), [x, W]))
    for r in res[1:]:
        assert all(torch.allclose(a, b, rtol=1e-12) for a, b in zip(res[0], r))


def test_fast_softplus_context_swaps_and_restores():
    model = models.build_model("small-cnn", 10)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    with losses.fast_softplus(model, 50.0):
        assert not any(isinstance(m, nn.ReLU) for m in model.modules())
        assert sum(isinstance(m, losses.SoftplusBeta) for m in model.modules()) == len(relus)
    assert [m for m in model.modules() if isinstance(m, nn.ReLU)] == relus


@pytest.mark.parametrize("conf", [dict(stride=1, padding=1), dict(stride=2, padding=1), dict(stride=2, padding=0),
                                  dict(stride=1, padding=2, dilation=2),
                                  dict(stride=2, padding=1, groups=2, bias=False)])
def test_fast_conv_matches_conv2d_to_second_order(conf):
    """The conv whose input gradient is recorded as conv_transpose2d: same values, input / weight gradients and
    second derivatives as nn.Conv2d (odd sizes and stride 2 exercise the transposed conv's output padding)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, **conf).double()
    x0 = torch.randn(2, 4, 9, 7, dtype=torch.float64)
    res = []
    for fast in (False, True):
        x = x0.clone().requires_grad_(True)
        mod = losses._Recorded(conv) if fast else conv
        y = F.softplus(mod(x), 3.0)
        g, = torch.autograd.grad((y * torch.cos(y)).sum(), x, create_graph=True)
        h = torch.autograd.grad((g ** 2).sum(), [x] + list(conv.parameters()))
        res.append((y.detach(), g.detach()) + h)
    for a, b in zip(*res):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_recorded_conv_computes_weight_gradients_only_when_asked():
    """An input-gradient pass through a recorded conv does not run the weight-gradient term (the native node holds
    it); a loss backward still reaches the weights, with the native conv's values."""
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = losses._Recorded(conv)(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        g, = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    ops = [e.name for e in prof.events()]
    assert "aten::conv_transpose2d" in ops                   # the input path ran ...
    assert "aten::convolution_backward" not in ops           # ... and no weight-gradient term (d/dx only)
    (g.square().sum() + out.sum()).backward()
    ref = nn.Conv2d(3, 4, 3, padding=1)
    ref.load_state_dict(conv.state_dict())
    x2 = x.detach().clone().requires_grad_(True)
    o2 = ref(x2)
    g2, = torch.autograd.grad(o2.square().sum(), x2, create_graph=True)
    (g2.square().sum() + o2.sum()).backward()
    assert torch.equal(out, o2) and torch.allclose(conv.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(x.grad, x2.grad, rtol=1e-5, atol=1e-6)


class _PreActBlock(nn.Module):
    """A pre-activation residual block that modifies conv and pool outputs in place (``out += shortcut``, as in the
    PreActResNet-18 of the adversarial-training repositories), then a head."""

    def __init__(self):
        super().__init__()
        self.bn, self.relu = nn.BatchNorm2d(3), nn.ReLU()
        self.conv, self.shortcut = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.pool, self.relu2, self.fc = nn.MaxPool2d(2), nn.ReLU(inplace=True), nn.Linear(4, 3)

    def forward(self, x):
        out = self.conv(self.relu(self.bn(x)))
        out += self.shortcut(x)
        out = self.pool(out)
        out.mul_(2.0)
        return self.fc(self.relu2(out).mean((2, 3)))


def test_recorded_layers_allow_in_place_ops_on_their_outputs():
    """Models that modify a conv's or a pool's output in place run inside the fast smooth model, with the reference
    implementation's ART loss and derivatives (float64)."""
    torch.manual_seed(0)
    model = _PreActBlock().double()
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2])
    res = []
    for impl in ("fast", "reference"):
        loss = losses.art_loss(model, x, y, beta=5.0, impl=impl)
        grads = torch.autograd.grad(loss.sum(), [x, model.conv.weight, model.shortcut.weight, model.bn.weight])
        res.append((loss.detach(),) + grads)
    for a, b in zip(*res):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert all(r.abs().sum() > 0 for r in res[0])


@pytest.mark.parametrize("size", [(8, 8), (9, 7)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_maxpool_matches_max_pool2d_to_second_order_bitwise(size, dtype):
    """The max-pool whose input gradient is recorded as max_unpool2d: the same values, input / weight gradients and
    second derivatives as nn.MaxPool2d(2), bit for bit (odd sizes: the unpool's output_size), through a smooth
    conv so that the second derivative is not zero."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1).to(dtype)
    pool = nn.MaxPool2d(2)
    x0 = torch.randn(2, 3, *size, dtype=dtype)
    res = []
    for fast in (False, True):
        x = x0.clone().requires_grad_(True)
        mod = losses._Recorded(pool) if fast else pool
        y = mod(F.softplus(conv(x), 3.0))
        g, = torch.autograd.grad((y * torch.cos(y)).sum(), x, create_graph=True)
        h = torch.autograd.grad((g ** 2).sum(), [x] + list(conv.parameters()))
        res.append((y.detach(), g.detach()) + h)
    for a, b in zip(*res):
        assert torch.equal(a, b)
    assert res[0][2].abs().sum() > 0                        # a real second-order term was compared


@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (2, 5, 9, 7), (1, 1, 2, 2), (3, 2, 3, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cpu_max_pool2x2_forward_equals_native_values_and_indices_with_ties(shape, dtype, channels_last):
    """The CPU 2x2 forward of the recorded pool: the values and the flat indices of F.max_pool2d(2, 2,
    return_indices=True) bit for bit, also with ties (ReLU zeros, equal values: the first in scan order wins),
    infinities, odd sizes (the last row / column is dropped) and channels_last inputs."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(shape, dtype=dtype))                  # many exact zeros: ties
    x = torch.where(torch.rand(shape) < 0.2, torch.full_like(x, 0.5), x)
    x.view(-1)[::7] = float("inf")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ref_v, ref_i = F.max_pool2d(x, 2, 2, return_indices=True)
    v, i = losses._max_pool2x2_cpu(x)
    assert torch.equal(v, ref_v) and torch.equal(i, ref_i) and i.dtype == ref_i.dtype
    if x.numel() >= 64:
        assert (ref_v == 0).any() and (ref_v == 0.5).any()            # the ties were there
    with pytest.raises(RuntimeError, match="too small"):               # too small: the native error, as natively
        losses._Recorded(nn.MaxPool2d(2))(torch.rand(2, 3, 1, 6, dtype=dtype))


def test_only_non_overlapping_pools_and_zero_padded_convs_are_recorded():
    keep = [nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(2, 1), nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d(2, dilation=2),
            nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), nn.Conv2d(3, 3, 3, padding="same")]
    swap = [nn.MaxPool2d(2), nn.MaxPool2d((2, 2), (2, 2)), nn.MaxPool2d(3, 3), nn.Conv2d(3, 3, 3, padding=1)]
    assert [losses._recordable(m) for m in keep] == [False] * len(keep)
    assert [losses._recordable(m) for m in swap] == [True] * len(swap)


def test_smooth_model_restores_convs_and_relus_also_on_error():
    model = models.build_model("resnet18", 10)
    before = [type(m) for m in model.modules()]
    params = list(model.parameters())
    n_conv = sum(type(m) is nn.Conv2d for m in model.modules())
    with losses.smooth_model(model, 50.0, "fast"):
        wrapped = [m for m in model.modules() if isinstance(m, losses._Recorded)]
        assert len(wrapped) == n_conv == 20 and not any(isinstance(m, nn.ReLU) for m in model.modules())
        assert list(model.parameters()) == params           # the same Parameter objects, nothing copied
    small = models.build_model("small-cnn", 10)
    with losses.smooth_model(small, 50.0, "fast"):
        assert sum(isinstance(m, losses._Recorded) and type(m.module) is nn.MaxPool2d for m in small.modules()) == 2
    with pytest.raises(RuntimeError, match="boom"):
        with losses.smooth_model(model, 50.0, "fast"):
            raise RuntimeError("boom")
    assert [type(m) for m in model.modules()] == before
    with losses.smooth_model(model, None, "reference"):     # beta None + reference: nothing swapped
        assert [type(m) for m in model.modules()] == before


# ----------------------------------------------------------------------------------------------------------------------
# Second-order terms and hygiene
# ----------------------------------------------------------------------------------------------------------------------
def test_gradients_reach_parameters_through_the_input_gradients(tiny):
    """L_attr depends on the parameters only through g = d f / d x: its parameter gradient is a second-order term.
    With softplus the input-gradient's own curvature d g / d x is non-zero; with ReLU it vanishes."""
    model, x, y = tiny
    loss, gx, gp = _grads(model, x, y)
    assert all(float(g.abs().sum()) > 0 for g in gp[:-1])          # every weight except the last bias
    assert float(gp[-1].abs().sum()) == 0                           # f_y - f_i* gradients do not see fc.bias
    xr = x.clone().requires_grad_(True)
    curv = {}
    for name, ctx in (("softplus", models.softplus_relu(model, 50.0)), ("relu", torch.enable_grad())):
        with ctx:
            g, = torch.autograd.grad(model(xr)[:, 0].sum(), xr, create_graph=True)
            hv, = torch.autograd.grad((g * torch.ones_like(g)).sum(), xr, allow_unused=True)
        curv[name] = 0.0 if hv is None else float(hv.abs().sum())
    assert curv["softplus"] > 1e-6 and curv["relu"] == 0.0


def test_model_state_is_left_as_found():
    model = models.build_model("resnet18", 10)
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    x, y = torch.rand(2, 3, 16, 16), torch.tensor([1, 2])
    losses.art_loss(model, x, y)
    losses.art_perturb(model, x, y, steps=1)
    assert not model.training and all(not m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == relus
    assert not x.requires_grad


def test_eval_mode_losses_are_per_sample():
    """In eval mode (no batch statistics) a sample's L_attr does not depend on the rest of the batch."""
    torch.manual_seed(0)
    model = models.build_model("resnet18", 10).eval()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([1, 2, 3, 4])
    assert torch.allclose(losses.art_loss(model, x, y)[:2], losses.art_loss(model, x[:2], y[:2]), atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------------
# Inner maximisation
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_ce", [False, True])
def test_art_perturb_stays_in_the_ball_and_raises_the_loss(with_ce):
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 10)
    x = torch.rand(8, 3, 16, 16)
    x[:, :, :2] = 0.0
    x[:, :, -2:] = 1.0          # pixels at the [0, 1] borders
    y = torch.arange(8) % 10
    eps = 8 / 255
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    start = (x + (2 * noise - 1) * eps).clamp(0, 1)
    x_t = losses.art_perturb(model, x, y, eps=eps, step_size=1.5 / 255, steps=3, noise=noise, with_ce=with_ce)
    assert x_t.shape == x.shape and not x_t.requires_grad
    assert float((x_t - x).abs().max()) <= eps + 1e-6
    assert float(x_t.min()) >= 0 and float(x_t.max()) <= 1
    assert float((x_t - start).abs().max()) > 1e-4       # it moved
    after, before = losses.art_loss(model, x_t, y).detach().mean(), losses.art_loss(model, start, y).detach().mean()
    assert float(after) > float(before)
    x0 = losses.art_perturb(model, x, y, eps=0.0, step_size=1.5 / 255, steps=2)
    assert torch.equal(x0, x)


# ----------------------------------------------------------------------------------------------------------------------
# RAR: IG-NORM / IG-SUM-NORM
# ----------------------------------------------------------------------------------------------------------------------
def test_integrated_gradients_path_completeness_and_norms(tiny):
    model, x, y = tiny
    x_end = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    ig = losses.integrated_gradients_path(model, x, x_end, y, steps=400, create_graph=False)
    ce = lambda z: F.cross_entropy(model(z), y, reduction="none")  # noqa: E731
    assert torch.allclose(ig.flatten(1).sum(1), ce(x_end) - ce(x), rtol=2e-2, atol=1e-4)
    n = losses.ig_norm(model, x, x_end, y, steps=7)
    ig7 = losses.integrated_gradients_path(model, x, x_end, y, steps=7)
    assert torch.allclose(n, ig7.abs().flatten(1).sum(1))
    assert torch.allclose(losses.ig_sum_norm(model, x, x_end, y, lam=0.3, steps=7), ce(x_end) + 0.3 * n)
    assert float(losses.ig_norm(model, x, x, y).detach().abs().max()) == 0  # x' = x: zero path
    n.sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())


@pytest.mark.parametrize("objective", ["ig_norm", "ig_sum_norm"])
def test_ig_perturb_stays_in_the_ball(objective):
    torch.manual_seed(0)
    model = models.build_model("small-cnn", 10)
    x, y = torch.rand(4, 3, 12, 12), torch.tensor([0, 1, 2, 3])
    x_adv = losses.ig_perturb(model, x, y, eps=4 / 255, step_size=1 / 255, steps=3, ig_steps=3, objective=objective)
    assert float((x_adv - x).abs().max()) <= 4 / 255 + 1e-6 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1


# ----------------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, match", [
    (dict(variant="eq3"), "unknown variant 'eq3'; choices: 'art'"),
    (dict(beta=0.0), "beta must be > 0"),
    (dict(beta=-1.0), "beta must be > 0"),
    (dict(variant="eq2"), "needs x_clean"),
    (dict(reduce_channels="sum"), "unknown reduce_channels 'sum'"),
    (dict(space="lab"), "unknown space 'lab'; choices: 'pixel', 'normalized'"),
    (dict(impl="slow"), "unknown impl 'slow'"),
    (dict(i_star=torch.tensor([0, 1, 2, 3, 4, 0])), "must be .* different from y"),
])
def test_art_loss_bad_input(tiny, kw, match):
    model, x, y = tiny
    with pytest.raises(ValueError, match=match):
        losses.art_loss(model, x, y, **kw)


def test_bad_shapes_and_attack_budgets(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match="x must be a \\[B, C, H, W\\]"):
        losses.art_loss(model, x[0], y)
    with pytest.raises(ValueError, match="y must be integer labels of shape \\[6\\]"):
        losses.art_loss(model, x, y[:3])
    with pytest.raises(ValueError, match="eps must be >= 0"):
        losses.art_perturb(model, x, y, eps=-1.0)
    with pytest.raises(ValueError, match="steps must be an int >= 0"):
        losses.art_perturb(model, x, y, steps=-1)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        losses.ig_norm(model, x, x, y, steps=0)
    with pytest.raises(ValueError, match="unknown objective"):
        losses.ig_perturb(model, x, y, objective="xent")


# ----------------------------------------------------------------------------------------------------------------------
# The authors' released loss and inner attack (setting "official", issue 11)
# ----------------------------------------------------------------------------------------------------------------------
MEAN, STD = (0.49, 0.48, 0.45), (0.20, 0.25, 0.30)


def _normalized_tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(models.Normalize(MEAN, STD), TinyNet()).double()


def _official_transcription(model, x, x_adv, y, beta, channel_mean=False):
    """The released loss written out per row, nothing shared: rows z = [x; x_adv]; for row j the gradients of the true
    and runner-up softplus logits of every row k of the same original sample (k in {i, i + B}) at k's own input, taken
    w.r.t. the normalised image (each row through the model alone); d_ap = max_k 1 - cos(zn_j, g^y_k), d_an = min_k
    1 - cos(zn_j, g^i*_k); mean over the 2B rows of log(1 + exp(-(d_an - d_ap))). Also returns the 2B x 2 matrices of
    the positive / negative distances (own, cross)."""
    mean = torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)
    net = model[1]
    z = torch.cat([x, x_adv]).detach()
    yy = torch.cat([y, y])
    B = x.shape[0]
    gy, gi = [], []
    with models.softplus_relu(net, beta):
        for k in range(2 * B):
            zn = ((z[k:k + 1] - mean) / std).requires_grad_(True)   # the network after the Normalize layer
            logits = net(zn)[0]
            others = [i for i in range(logits.shape[0]) if i != int(yy[k])]
            i_star = max(others, key=lambda i: float(logits[i].detach()))
            gy.append(torch.autograd.grad(logits[int(yy[k])], zn, retain_graph=True)[0][0])
            gi.append(torch.autograd.grad(logits[i_star], zn)[0][0])

    def vec(t):
        return (t.abs().mean(0) if channel_mean else t).flatten()

    def d(img, g):
        a, b = vec(img), vec(g)
        return 1 - float(a @ b) / (float(a.norm()) * float(b.norm()))

    out, dp, dn = [], [], []
    for j in range(2 * B):
        img = ((z[j] - mean[:, :, :]) / std)
        ks = (j, (j + B) % (2 * B))
        pos = [d(img, gy[k]) for k in ks]
        neg = [d(img, gi[k]) for k in ks]
        dp.append(pos)
        dn.append(neg)
        out.append(math.log(1 + math.exp(-(min(neg) - max(pos)))))
    return sum(out) / len(out), torch.tensor(dp, dtype=torch.float64), torch.tensor(dn, dtype=torch.float64)


@pytest.mark.parametrize("channel_mean", [False, True])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_art_loss_official_equals_transcription(channel_mean, impl):
    model = _normalized_tiny()
    torch.manual_seed(1)
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    x_adv = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    y = torch.tensor([0, 1, 2, 3])
    ref, dp, dn = _official_transcription(model, x, x_adv, y, 50.0, channel_mean)
    got = losses.art_loss_official(model, x, x_adv, y, beta=50.0, channel_mean=channel_mean, impl=impl).detach()
    assert got.dim() == 0
    assert abs(float(got) - ref) <= 1e-6, (float(got), ref)
    t = losses.art_terms_official(model, x, x_adv, y, 50.0, channel_mean, impl)
    assert torch.allclose(t["d_ap"].detach(), dp.max(1).values, atol=1e-9)
    assert torch.allclose(t["d_an"].detach(), dn.min(1).values, atol=1e-9)
    assert float(t["loss"].detach().mean()) == pytest.approx(float(got), abs=1e-12)


def test_art_loss_official_cross_pair_is_the_hardest():
    """A case where, for some rows, the cross pair (the clean image against the perturbed copy's gradient, or the other
    way round) gives the larger positive / smaller negative distance: the mining must take it, and the transcription
    (which has it) and artlib agree; dropping the cross pair gives a different value."""
    model = _normalized_tiny(3)
    torch.manual_seed(4)
    x = torch.rand(3, 3, 6, 6, dtype=torch.float64)
    x_adv = torch.rand(3, 3, 6, 6, dtype=torch.float64)   # far from x: own and cross gradients differ a lot
    y = torch.tensor([0, 2, 4])
    ref, dp, dn = _official_transcription(model, x, x_adv, y, 50.0)
    assert bool((dp[:, 1] > dp[:, 0]).any()) and bool((dn[:, 1] < dn[:, 0]).any())  # cross pairs are the hardest
    got = losses.art_loss_official(model, x, x_adv, y, beta=50.0).detach()
    assert abs(float(got) - ref) <= 1e-6
    own_only = F.softplus(-(dn[:, 0] - dp[:, 0])).mean()
    assert abs(float(own_only) - ref) > 1e-4


def test_art_loss_official_gradients_reach_the_weights():
    model = _normalized_tiny()
    torch.manual_seed(2)
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    x_adv = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    y = torch.tensor([0, 1, 2, 3])
    loss = losses.art_loss_official(model, x, x_adv, y)
    params = [p for n, p in model.named_parameters() if n != "1.fc.bias"]  # the last bias does not move g
    grads = torch.autograd.grad(loss, params)
    assert all(bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0 for g in grads)
    # the first conv's weights are reached only through the input gradients' graph (create_graph)
    assert float(grads[0].abs().sum()) > 0
    # and the gradient is the derivative of the value (central difference on one weight)
    w = model[1].c1.weight
    with torch.no_grad():
        w[0, 0, 0, 0] += 1e-6
        up = float(losses.art_loss_official(model, x, x_adv, y).detach())
        w[0, 0, 0, 0] -= 2e-6
        down = float(losses.art_loss_official(model, x, x_adv, y).detach())
        w[0, 0, 0, 0] += 1e-6
    assert (up - down) / 2e-6 == pytest.approx(float(grads[0][0, 0, 0, 0]), rel=1e-4, abs=1e-8)


def test_art_loss_official_bad_input():
    model = _normalized_tiny()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="x_adv must be shaped like x"):
        losses.art_loss_official(model, x, x[:1], y)
    with pytest.raises(ValueError, match="channel_mean"):
        losses.art_loss_official(model, x, x, y, channel_mean="mean")
    with pytest.raises(ValueError, match="Normalize"):
        losses.art_loss_official(TinyNet().double(), x, x, y)
    with pytest.raises(ValueError, match="unknown impl 'slow'; choices: 'fast', 'reference'"):
        losses.art_loss_official(model, x, x, y, impl="slow")


@pytest.mark.parametrize("topk", [1, 10, 50])
def test_topk_restricted_attack_touches_only_the_chosen_entries(topk):
    model = _normalized_tiny()
    torch.manual_seed(5)
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    noise = torch.rand_like(x)
    eps = 8 / 255
    start = (x + (2 * noise - 1) * eps).clamp(0, 1)
    mask = losses.topk_entry_mask(model, start, y, topk)
    assert torch.equal(mask.flatten(1).sum(1), torch.full((4,), float(topk), dtype=torch.float64))
    # the mask is the top-k of |g^y * std| of the ReLU model at the start (independent computation)
    z = start.clone().requires_grad_(True)
    g, = torch.autograd.grad(model(z).gather(1, y[:, None]).sum(), z)
    score = (g * torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)).abs().flatten(1)
    thr = score.sort(1, descending=True).values[:, topk - 1:topk]
    assert bool(((score > thr) <= (mask.flatten(1) > 0)).all())
    x_adv = losses.art_perturb_official(model, x, y, eps=eps, step_size=5 / 255, steps=3, topk=topk, noise=noise)
    moved = (x_adv != start)
    assert bool(moved.any())
    assert bool((moved <= (mask > 0)).all())          # nothing outside the chosen entries moved
    assert float((x_adv - x).abs().max()) <= eps + 1e-12 and float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    full = losses.art_perturb(model, x, y, eps, 5 / 255, 3, space="normalized", noise=noise)
    assert int((full != start).sum()) > int(moved.sum())   # the unrestricted ascent moves more entries
    with pytest.raises(ValueError, match=r"topk must be an int in \[1, 108\]"):
        losses.art_perturb_official(model, x, y, topk=109)
