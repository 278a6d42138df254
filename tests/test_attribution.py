"""artlib.attribution: every method over captum, IG completeness, the differentiable IG path, CAM / Grad-CAM,
map reductions, model-state hygiene and bad input."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, Saliency
from torch import nn

from artlib import attribution, models

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="module")
def net64():
    """small-cnn in float64, eval mode (no BatchNorm: train/eval compute the same function)."""
    torch.manual_seed(0)
    return models.build_model("small-cnn", 10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)).double().eval()


@pytest.fixture(scope="module")
def x64():
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _logit(model, x, t):
    return model(x).gather(1, t.view(-1, 1)).squeeze(1)


# ---------------------------------------------------------------------------------------------------------------
# shapes, methods, state hygiene
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", attribution.METHODS)
def test_every_method_returns_x_shape(net64, x64, method):
    a = attribution.attribute(net64, x64, torch.tensor([0, 3, 7]), method, n_steps=8, n_samples=4, seed=0)
    assert a.shape == x64.shape and a.dtype == x64.dtype and a.device == x64.device
    assert torch.isfinite(a).all() and a.abs().sum() > 0
    assert not a.requires_grad


def test_target_int_equals_tensor_and_bad_target(net64, x64):
    a = attribution.attribute(net64, x64, 4, "saliency")
    b = attribution.attribute(net64, x64, torch.tensor([4, 4, 4]), "saliency")
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="batch size"):
        attribution.attribute(net64, x64, torch.tensor([1, 2]), "saliency")
    with pytest.raises(ValueError, match="target"):
        attribution.attribute(net64, x64, torch.tensor([1.0, 2.0, 3.0]), "saliency")


def test_bad_arguments_raise_clearly(net64, x64):
    with pytest.raises(ValueError, match="unknown attribution method 'lrp'.*smoothgrad"):
        attribution.attribute(net64, x64, 0, "lrp")
    with pytest.raises(ValueError, match="ig_method"):
        attribution.attribute(net64, x64, 0, "ig", ig_method="simpson")
    with pytest.raises(ValueError, match="differentiable"):
        attribution.attribute(net64, x64, 0, "gradshap", differentiable=True)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        attribution.attribute(net64, x64[0], 0, "ig")
    with pytest.raises(ValueError, match="baselines"):
        attribution.attribute(net64, x64, 0, "ig", baselines="uniform")
    with pytest.raises(ValueError, match="baselines"):
        attribution.attribute(net64, x64, 0, "ig", baselines=torch.zeros(3, 3, 8, 8))
    with pytest.raises(ValueError, match="n_steps"):
        attribution.attribute(net64, x64, 0, "ig", n_steps=1)
    with pytest.raises(ValueError, match="beta"):
        attribution.attribute(net64, x64, 0, "ig", beta=-1.0)


def test_restores_mode_requires_grad_and_bn_stats():
    torch.manual_seed(2)
    model = models.build_model("resnet18", 10)
    model.train()
    frozen = model.net.conv1.weight
    frozen.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    x = torch.rand(2, 3, 32, 32)
    for method in ("ig", "gradcam", "saliency"):
        attribution.attribute(model, x, 1, method, n_steps=4)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        if k in stats:
            torch.testing.assert_close(v, stats[k], msg=f"BatchNorm buffer {k} changed")
    model.eval()
    attribution.attribute(model, x, 1, "saliency")
    assert not model.training


# ---------------------------------------------------------------------------------------------------------------
# Integrated Gradients
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ig_method,n_steps", [("gausslegendre", 64), ("riemann_middle", 200),
                                               ("riemann_right", 400)])
def test_ig_completeness(net64, x64, ig_method, n_steps):
    """Sundararajan et al. Prop. 1: sum_i IG_i = f(x) - f(baseline), zero and Gaussian baselines."""
    t = net64(x64).argmax(1)
    ig = attribution.attribute(net64, x64, t, "ig", n_steps=n_steps, ig_method=ig_method)
    with torch.no_grad():
        delta = _logit(net64, x64, t) - _logit(net64, torch.zeros_like(x64), t)
    assert delta.abs().min() > 1e-3
    torch.testing.assert_close(ig.sum((1, 2, 3)), delta, rtol=0.01, atol=1e-6)
    ig_g = attribution.attribute(net64, x64, t, "ig", baselines="gaussian", seed=3, n_steps=n_steps,
                                 ig_method=ig_method)
    base = torch.randn(x64.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        delta_g = _logit(net64, x64, t) - _logit(net64, base, t)
    torch.testing.assert_close(ig_g.sum((1, 2, 3)), delta_g, rtol=0.01, atol=1e-4)


def test_ig_gaussian_baseline_is_seeded(net64, x64):
    kw = dict(baselines="gaussian", n_steps=20)
    a = attribution.attribute(net64, x64, 1, "ig", seed=5, **kw)
    b = attribution.attribute(net64, x64, 1, "ig", seed=5, **kw)
    c = attribution.attribute(net64, x64, 1, "ig", seed=6, **kw)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    zero = attribution.attribute(net64, x64, 1, "ig", n_steps=20)
    torch.testing.assert_close(attribution.attribute(net64, x64, 1, "ig", baselines=0.0, n_steps=20), zero)
    torch.testing.assert_close(attribution.attribute(net64, x64, 1, "ig", baselines="zero", n_steps=20), zero)


@pytest.mark.parametrize("ig_method", ["riemann_trapezoid", "gausslegendre", "riemann_right"])
def test_differentiable_ig_equals_captum(net64, x64, ig_method):
    t = torch.tensor([2, 5, 9])
    base = torch.rand(x64.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.2
    ref = IntegratedGradients(net64).attribute(x64, baselines=base, target=t, n_steps=16, method=ig_method)
    for ibs in (None, 7):  # all path points at once, and chunked
        got = attribution.attribute(net64, x64, t, "ig", baselines=base, n_steps=16, ig_method=ig_method,
                                    differentiable=True, internal_batch_size=ibs)
        # captum rounds its quadrature weights to float32 (exact for 1/16, not for Gauss-Legendre weights)
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-10)
    plain = attribution.attribute(net64, x64, t, "ig", baselines=base, n_steps=16, ig_method=ig_method)
    torch.testing.assert_close(plain, ref, rtol=0, atol=0)
    assert (ref.abs() > 1e-6).float().mean() > 0.5


def test_differentiable_saliency_and_input_x_gradient(net64, x64):
    t = torch.tensor([1, 2, 3])
    ref = Saliency(net64).attribute(x64.clone().requires_grad_(), target=t, abs=False)
    x = x64.clone().requires_grad_()
    g = attribution.attribute(net64, x, t, "saliency", differentiable=True)
    assert g.requires_grad
    torch.testing.assert_close(g.detach(), ref)
    ixg = attribution.attribute(net64, x, t, "input_x_gradient", differentiable=True)
    torch.testing.assert_close(ixg.detach(), x64 * ref)
    torch.testing.assert_close(attribution.attribute(net64, x64, t, "input_x_gradient"), x64 * ref)


def test_differentiable_ig_backprops_through_softplus(net64):
    """The attack path: grad of a loss on IG w.r.t. x is non-zero through Softplus(beta) and matches finite
    differences (gradcheck); the model has its ReLUs back afterwards."""
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64).requires_grad_()

    def f(inp):
        return attribution.attribute(net64, inp, 3, "ig", n_steps=4, beta=10.0, differentiable=True,
                                     ig_method="riemann_trapezoid")

    ig = f(x)
    (g,) = torch.autograd.grad(ig.abs().sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, nn.Softplus) for m in net64.modules())
    assert sum(isinstance(m, nn.ReLU) for m in net64.modules()) == 3
    # the softplus model gives a different (smoothed) attribution than the ReLU model
    relu_ig = attribution.attribute(net64, x.detach(), 3, "ig", n_steps=4, ig_method="riemann_trapezoid")
    assert not torch.allclose(ig.detach(), relu_ig)


# ---------------------------------------------------------------------------------------------------------------
# gradient methods
# ---------------------------------------------------------------------------------------------------------------
def test_saliency_is_raw_gradient_and_smoothgrad(net64, x64):
    x = x64.clone().requires_grad_()
    (grad,) = torch.autograd.grad(_logit(net64, x, torch.tensor([0, 1, 2])).sum(), x)
    sal = attribution.attribute(net64, x64, torch.tensor([0, 1, 2]), "saliency")
    torch.testing.assert_close(sal, grad)
    assert (sal < 0).any()                      # raw (signed), not |grad|
    sg0 = attribution.attribute(net64, x64, torch.tensor([0, 1, 2]), "smoothgrad", stdevs=0.0, n_samples=3)
    torch.testing.assert_close(sg0, grad)       # no noise: the gradient itself
    state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    s1 = attribution.attribute(net64, x64, 0, "smoothgrad", seed=11, n_samples=5, internal_batch_size=2)
    s2 = attribution.attribute(net64, x64, 0, "smoothgrad", seed=11, n_samples=5, internal_batch_size=2)
    assert torch.equal(torch.get_rng_state(), state)   # the caller's RNGs are untouched
    assert np.array_equal(np.random.get_state()[1], np_state)
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)
    assert not torch.allclose(s1, attribution.attribute(net64, x64, 0, "saliency"))


def test_gradshap_seeded_and_baseline(net64, x64):
    np_state = np.random.get_state()[1].copy()
    a = attribution.attribute(net64, x64, 2, "gradshap", seed=1, n_samples=6)
    assert np.array_equal(np.random.get_state()[1], np_state)  # captum draws from numpy's RNG: restored
    np.random.rand(3)  # disturbing the global numpy RNG in between does not matter
    b = attribution.attribute(net64, x64, 2, "gradshap", seed=1, n_samples=6)
    c = attribution.attribute(net64, x64, 2, "gradshap", seed=2, n_samples=6)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    # expected-gradients completeness holds in expectation; with many samples it is close to f(x) - f(0)
    t = torch.full((3,), 2)
    many = attribution.attribute(net64, x64, t, "gradshap", seed=0, n_samples=400)
    with torch.no_grad():
        delta = _logit(net64, x64, t) - _logit(net64, torch.zeros_like(x64), t)
    torch.testing.assert_close(many.sum((1, 2, 3)), delta, rtol=0.1, atol=2e-3)
    with pytest.raises(ValueError, match="gradshap baselines"):
        attribution.attribute(net64, x64, 2, "gradshap", baselines=torch.zeros(2, 1, 16, 16))


@pytest.mark.parametrize("method", ["ig", "saliency", "input_x_gradient", "gradshap", "smoothgrad"])
def test_summed_gradients_equal_captums_own_bitwise(monkeypatch, method):
    """One autograd root (attribution.summed_gradients) gives captum's per-row-root gradients bit for bit (float32
    ResNet-18 with BatchNorm, 64 IG path rows)."""
    from captum._utils.gradient import compute_gradients
    torch.manual_seed(0)
    net = models.build_model("resnet18", 10).eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([1, 3, 5, 7])
    kw = dict(n_steps=16, seed=0, n_samples=4)
    with pytest.raises(ValueError, match="one scalar output per row"):   # like captum's own: a target is needed
        attribution.summed_gradients(net, (x.clone().requires_grad_(True),), None)
    ours = attribution.attribute(net, x, t, method, **kw)
    monkeypatch.setattr(attribution, "summed_gradients", compute_gradients)
    theirs = attribution.attribute(net, x, t, method, **kw)
    assert torch.equal(ours, theirs) and ours.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------------
# Grad-CAM and CAM
# ---------------------------------------------------------------------------------------------------------------
def test_gradcam_small_cnn_matches_manual(net64, x64):
    t = torch.tensor([1, 4, 6])
    got = attribution.attribute(net64, x64, t, "gradcam")
    feats = net64.net.features(net64.normalize(x64))          # the last post-ReLU feature map [B, K, 4, 4]
    logits = net64.net.fc(net64.net.avgpool(feats).flatten(1))
    (dA,) = torch.autograd.grad(logits.gather(1, t.view(-1, 1)).sum(), feats)
    cam = F.relu((dA.mean((2, 3), keepdim=True) * feats).sum(1, keepdim=True))
    ref = F.interpolate(cam, size=(16, 16), mode="bilinear").expand(-1, 3, -1, -1)
    torch.testing.assert_close(got, ref.detach())
    assert (got >= 0).all() and torch.equal(got[:, 0], got[:, 2])


def test_gradcam_and_cam_resnet18():
    torch.manual_seed(3)
    model = models.build_model("resnet18", 10).eval()
    x = torch.rand(2, 3, 32, 32)
    for method in ("gradcam", "cam"):
        a = attribution.attribute(model, x, torch.tensor([0, 5]), method)
        assert a.shape == x.shape and torch.isfinite(a).all() and a.abs().sum() > 0
        assert torch.equal(a[:, 0], a[:, 1])
    # explicit layer: Grad-CAM on layer3 gives a different map than the default (layer4)
    l3 = attribution.attribute(model, x, 0, "gradcam", layer=model.net.layer3)
    assert not torch.allclose(l3, attribution.attribute(model, x, 0, "gradcam"))


def test_cam_spatial_mean_is_logit_minus_bias(net64, x64):
    """Zhou et al. Eq. 2 for a GAP model: mean over positions of sum_k w_tk A_k = logit_t - b_t."""
    t = torch.tensor([3, 0, 8])
    cam = attribution._cam(net64, x64, t, None)               # feature resolution [B, 1, 4, 4]
    assert cam.shape == (3, 1, 4, 4)
    with torch.no_grad():
        expected = _logit(net64, x64, t) - net64.fc_layer.bias[t]
    torch.testing.assert_close(cam.mean((1, 2, 3)).detach(), expected)
    up = attribution.attribute(net64, x64, t, "cam")
    torch.testing.assert_close(up[:, :1], F.interpolate(cam, size=(16, 16), mode="bilinear").detach())


def test_cam_needs_gap_model():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    with pytest.raises(ValueError, match="global-average-pool"):
        attribution.attribute(mlp, torch.rand(2, 3, 4, 4), 0, "cam")


# ---------------------------------------------------------------------------------------------------------------
# map reductions
# ---------------------------------------------------------------------------------------------------------------
def test_to_saliency_map_reductions():
    a = torch.randn(4, 3, 5, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    n = a.numpy()
    refs = {"sum_abs": np.abs(n).sum(1), "mean_abs": np.abs(n).mean(1), "abs_sum": np.abs(n.sum(1)),
            "sum": n.sum(1), "mean": n.mean(1), "max_abs": np.abs(n).max(1)}
    for reduce, ref in refs.items():
        m = attribution.to_saliency_map(a, reduce)
        assert m.shape == (4, 5, 6)
        np.testing.assert_allclose(m.numpy(), ref, atol=1e-12, err_msg=reduce)
    gray = attribution.to_saliency_map(a, "gray")
    assert gray.shape == (4, 5, 6) and gray.min() >= 0 and gray.max() <= 1
    assert (gray.flatten(1).amax(1) == 1).all() and (gray.flatten(1).amin(1) == 0).all()
    norm = attribution.to_saliency_map(a, "sum_abs", normalize=True)
    torch.testing.assert_close(norm.sum((1, 2)), torch.full((4,), 30.0, dtype=torch.float64))
    z = attribution.to_saliency_map(torch.zeros(1, 3, 2, 2), normalize=True)
    assert torch.equal(z, torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="unknown reduce 'l2'"):
        attribution.to_saliency_map(a, "l2")
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        attribution.to_saliency_map(a[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(net64, x64):
    """Every method runs on the GPU and agrees with the CPU (float64; seeded Gaussian baseline drawn on the CPU)."""
    gpu_net = models.build_model("small-cnn", 10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26)).double()
    gpu_net.load_state_dict(net64.state_dict())
    gpu_net = gpu_net.cuda().eval()
    t = torch.tensor([0, 3, 7])
    for method, kw in [("ig", dict(baselines="gaussian", seed=1, n_steps=16)), ("saliency", {}),
                       ("input_x_gradient", {}), ("gradcam", {}), ("cam", {})]:
        cpu = attribution.attribute(net64, x64, t, method, **kw)
        gpu = attribution.attribute(gpu_net, x64.cuda(), t.cuda(), method, **kw)
        assert gpu.device.type == "cuda"
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-9, msg=method)
    x = x64.cuda().requires_grad_()
    ig = attribution.attribute(gpu_net, x, t.cuda(), "ig", n_steps=8, beta=10.0, differentiable=True)
    (g,) = torch.autograd.grad(ig.abs().sum(), x)
    assert g.abs().sum() > 0
