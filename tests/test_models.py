"""artlib.models: architectures, Normalize, the ReLU -> Softplus swap, CAM layers, external weight loaders."""
import argparse
import json

import pytest
import torch
import torchvision
from torch import nn

from artlib import checkpoints, models
from artlib.checkpoints import CheckpointNotFoundError, UnsafeCheckpointError

# Input side per arch: CIFAR-style nets at 32x32; ImageNet-style ones small enough for a 2-core CPU.
INPUT_SIZE = {"wrn-28-10": 32, "wrn-40-2": 32, "resnet18": 32, "resnet18-imagenet": 32, "resnet50": 64,
              "wide-resnet50-2": 32, "densenet121": 64, "densenet121-cifar": 32, "vgg-gap": 64, "small-cnn": 32}
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests run many tiny ops: one intra-op thread avoids OpenMP spin-waits on a shared 2-core machine
    (measured: ~12 s instead of ~70 s for this file while other processes competed for the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _CountRelu(torch.overrides.TorchFunctionMode):
    """Counts relu calls made through torch functions (F.relu, torch.relu, Tensor.relu), module-made or not."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("relu", "relu_"):
            self.n += 1
        return func(*args, **(kwargs or {}))


def test_archs_cover_the_issue():
    for arch in ("wrn-28-10", "wrn-40-2", "resnet18", "resnet50", "densenet121", "vgg-gap", "small-cnn"):
        assert arch in models.ARCHS


@pytest.mark.parametrize("arch", models.ARCHS)
def test_forward_shape_normalize_first_and_relu_modules(arch):
    torch.manual_seed(0)
    model = models.build_model(arch, num_classes=7, mean=MEAN, std=STD).eval()
    assert isinstance(model, nn.Sequential) and model.arch == arch
    assert isinstance(model[0], models.Normalize) and model[0] is model.normalize and model[1] is model.net
    assert torch.allclose(model[0].mean.flatten(), torch.tensor(MEAN))
    assert torch.allclose(model[0].std.flatten(), torch.tensor(STD))
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(m.inplace for m in relus)

    # Every relu call comes from an nn.ReLU module (forward hooks fire per call, also for a module used twice).
    module_calls = []
    hooks = [m.register_forward_hook(lambda *a: module_calls.append(1)) for m in relus]
    feats = []
    hooks.append(model.cam_layer.register_forward_hook(lambda m, i, o: feats.append(o)))
    size = INPUT_SIZE[arch]
    counter = _CountRelu()
    with torch.no_grad(), counter:
        out = model(torch.rand(2, 3, size, size))
    for h in hooks:
        h.remove()
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert counter.n == len(module_calls) > 0

    # The CAM layer gives the last feature map, post-ReLU, that feeds the linear classifier.
    (fmap,) = feats
    assert fmap.dim() == 4 and fmap.shape[0] == 2 and (fmap >= 0).all()
    assert isinstance(model.fc_layer, nn.Linear) and fmap.shape[1] == model.fc_layer.in_features
    assert models.cam_layer(model) is model.cam_layer
    assert not model.training  # nothing switched the mode behind our back

    # The swap reaches every ReLU and puts the same objects back.
    ids = [id(m) for m in relus]
    with models.softplus_relu(model, beta=50.0):
        assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert [id(m) for m in model.modules() if isinstance(m, nn.ReLU)] == ids


def test_architecture_details():
    wrn = models.build_model("wrn-28-10", 10)
    assert sum(p.numel() for p in wrn.parameters()) == 36_479_194  # WRN-28-10 of Zagoruyko & Komodakis: 36.5M
    assert len(wrn.net.features.block1) == 4 and wrn.net.features.block3[0].conv1.out_channels == 640
    assert len(models.build_model("wrn-40-2", 10).net.features.block2) == 6
    r18 = models.build_model("resnet18", 10).net
    assert r18.conv1.kernel_size == (3, 3) and r18.conv1.stride == (1, 1) and isinstance(r18.maxpool, nn.Identity)
    vgg = models.build_model("vgg-gap", 200).net
    assert sum(isinstance(m, nn.MaxPool2d) for m in vgg.features) == 4  # 5th max-pool removed: stride 16
    assert vgg.conv6[0].out_channels == 1024 and vgg.fc.in_features == 1024
    mnist = models.build_model("small-cnn", 10, mean=(0.1307,), std=(0.3081,))  # channels = len(mean)
    assert mnist(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    small = models.build_model("small-cnn", 5).eval()
    assert small(torch.rand(1, 3, 128, 96)).shape == (1, 5)  # any input size


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError, match="resnet-9000") as err:
        models.build_model("resnet-9000", 10)
    assert all(a in str(err.value) for a in models.ARCHS)
    with pytest.raises(ValueError, match="num_classes"):
        models.build_model("small-cnn", 0)


def test_normalize_values_buffers_and_errors():
    norm = models.Normalize((0.5, 0.25), (0.5, 2.0))
    x = torch.tensor([1.0, 0.25]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    assert torch.equal(norm(x), torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2))
    assert set(norm.state_dict()) == {"mean", "std"} and norm.mean.shape == (2, 1, 1)
    assert norm.double().mean.dtype == torch.float64  # buffers move with the module
    model = models.build_model("small-cnn", 3, mean=MEAN, std=STD)
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())
    with pytest.raises(ValueError, match="3, H, W"):
        model(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="std"):
        models.Normalize((0.5,), (0.0,))
    with pytest.raises(ValueError, match="equal length"):
        models.Normalize((0.5, 0.5), (0.5,))


def _second_derivative(model, x):
    """d/dx of <d logit_0 / dx, v>: zero for a piecewise-linear (ReLU) network, non-zero for a smooth one."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, 0].sum(), x, create_graph=True)
    (h,) = torch.autograd.grad((g * torch.ones_like(g)).sum(), x, allow_unused=True)
    return torch.zeros_like(x) if h is None else h


@pytest.mark.parametrize("arch,size", [("small-cnn", 16), ("resnet18", 16)])
def test_softplus_swap_second_derivatives_and_restore(arch, size):
    torch.manual_seed(0)
    model = models.build_model(arch, 4).eval()
    x = torch.rand(2, 3, size, size)
    relus = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        before = model(x)
    assert _second_derivative(model, x).abs().max() == 0

    with models.softplus_relu(model, beta=50.0) as swapped:
        assert swapped is model
        soft = [m for m in model.modules() if isinstance(m, nn.Softplus)]
        assert soft and all(m.beta == 50.0 and not m.training for m in soft)
        assert _second_derivative(model, x).abs().max() > 0
        with torch.no_grad():
            inside = model(x)
    assert not torch.allclose(inside, before)

    assert [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ReLU)] == relus
    assert not any(isinstance(m, nn.Softplus) for m in model.modules())
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(x), before)
    assert _second_derivative(model, x).abs().max() == 0


def test_swap_handles_inplace_shared_nested_and_exceptions():
    shared = nn.ReLU(inplace=True)
    model = nn.Sequential(nn.Linear(4, 4), shared, nn.Sequential(nn.Linear(4, 4), shared, nn.ReLU(inplace=True)),
                          nn.ReLU6())
    model.train()
    originals = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    with pytest.raises(RuntimeError, match="boom"):
        with models.softplus_relu(model, beta=10.0):
            assert model[1] is model[2][1] and isinstance(model[1], nn.Softplus)  # sharing preserved
            assert isinstance(model[2][2], nn.Softplus) and isinstance(model[3], nn.ReLU6)  # only ReLU swapped
            assert model[1].training  # the replacements copy the mode of the ReLU they replace
            with models.softplus_relu(model, beta=10.0):  # nested: nothing left to swap
                pass
            assert isinstance(model[2][2], nn.Softplus)
            x = torch.randn(3, 4, requires_grad=True)
            (g,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
            (h,) = torch.autograd.grad(g.pow(2).sum(), x)  # double backprop through former in-place ReLUs
            assert h.abs().sum() > 0
            raise RuntimeError("boom")
    assert model[1] is shared and model[2][1] is shared and model[2][2].inplace
    assert [m for m in model.modules() if isinstance(m, nn.ReLU)] == originals
    with pytest.raises(ValueError, match="beta"):
        models.softplus_relu(model, beta=0.0)


def test_gradcam_on_cam_layer():
    from captum.attr import LayerGradCam

    torch.manual_seed(0)
    model = models.build_model("small-cnn", 5).eval()
    cam = LayerGradCam(model, models.cam_layer(model)).attribute(torch.rand(2, 3, 32, 32), target=1)
    assert cam.shape == (2, 1, 8, 8)


# ----------------------------------------------------------------------------------------------------------------------
# external weights
# ----------------------------------------------------------------------------------------------------------------------

def _robustness_checkpoint(net: nn.Module, key: str = "model", extra: dict | None = None) -> dict:
    """A checkpoint laid out like microsoft/robust-models-transfer's (DataParallel(AttackerModel) state dict)."""
    sd = {}
    mean, std = torch.tensor(models.IMAGENET_MEAN).view(3, 1, 1), torch.tensor(models.IMAGENET_STD).view(3, 1, 1)
    sd["module.normalizer.new_mean"], sd["module.normalizer.new_std"] = mean, std
    for k, v in net.state_dict().items():
        sd["module.model." + k] = v
    sd["module.attacker.normalize.new_mean"], sd["module.attacker.normalize.new_std"] = mean, std
    for k, v in net.state_dict().items():
        sd["module.attacker.model." + k] = v
    ckpt = {key: sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9}]},
            "schedule": None, "epoch": 90}
    ckpt.update(extra or {})
    return ckpt


def _assert_same_weights(model: models.NormalizedModel, net: nn.Module):
    ours = model.net.state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(ours[k], v), k


@pytest.fixture(scope="module")
def tv_resnet18():
    torch.manual_seed(1)
    return torchvision.models.resnet18(num_classes=10)


def test_load_robustness_checkpoint(tmp_path, tv_resnet18):
    path = tmp_path / "resnet18_linf_eps4.0.ckpt"
    torch.save(_robustness_checkpoint(tv_resnet18), path)
    model = models.load_robustness_checkpoint(path, "resnet18-imagenet", num_classes=10)
    _assert_same_weights(model, tv_resnet18)
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor(models.IMAGENET_MEAN))
    tv_resnet18.eval(), model.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = tv_resnet18((x - model.normalize.mean) / model.normalize.std)
        assert torch.allclose(model(x), expected, atol=1e-5)

    _assert_same_weights(models.build_model("resnet18-imagenet", 10, pretrained=path), tv_resnet18)

    # legacy key 'state_dict', a small arch
    torch.manual_seed(2)
    small = models.SmallCNN(10)
    legacy = tmp_path / "legacy.ckpt"
    torch.save(_robustness_checkpoint(small, key="state_dict"), legacy)
    _assert_same_weights(models.load_robustness_checkpoint(legacy, "small-cnn", num_classes=10), small)

    with pytest.raises(ValueError, match="do not fit arch 'resnet18'"):  # CIFAR stem: conv1 shape differs
        models.load_robustness_checkpoint(path, "resnet18", num_classes=10)
    with pytest.raises(CheckpointNotFoundError, match="nope.ckpt"):
        models.load_robustness_checkpoint(tmp_path / "nope.ckpt", "resnet18-imagenet")


def test_pickled_robustness_checkpoint_needs_explicit_conversion(tmp_path, tv_resnet18):
    src = tmp_path / "resnet18_l2_eps3.ckpt"
    torch.save(_robustness_checkpoint(tv_resnet18, extra={"args": argparse.Namespace(arch="resnet18")}), src)

    with pytest.raises(UnsafeCheckpointError) as err:
        models.load_robustness_checkpoint(src, "resnet18-imagenet", num_classes=10)
    msg = str(err.value)
    assert str(src) in msg and "python -m artlib models convert" in msg and "--trust-pickle" in msg and "dill" in msg
    with pytest.raises(UnsafeCheckpointError, match="convert"):
        models.build_model("resnet18-imagenet", 10, pretrained=src)

    dst = tmp_path / "plain.pt"
    with pytest.raises(UnsafeCheckpointError, match="trust_pickle"):
        models.convert_robustness_checkpoint(src, dst)
    assert not dst.exists()

    assert models.convert_robustness_checkpoint(src, dst, trust_pickle=True) == dst
    meta = json.loads(checkpoints.sidecar_path(dst).read_text())
    assert meta["sha256"] == checkpoints.sha256_file(dst)
    assert meta["config"]["source_sha256"] == checkpoints.sha256_file(src) and meta["config"]["epoch"] == 90
    state, _ = checkpoints.load(dst)  # weights_only=True
    assert set(state) == set(tv_resnet18.state_dict())  # module.model.* only, prefix stripped
    _assert_same_weights(models.load_robustness_checkpoint(dst, "resnet18-imagenet", num_classes=10), tv_resnet18)
    _assert_same_weights(models.build_model("resnet18-imagenet", 10, pretrained=dst), tv_resnet18)

    # the command line the error message names
    from artlib.__main__ import main

    dst2 = tmp_path / "cli.pt"
    assert main(["models", "convert", str(src), "--out", str(dst2), "--trust-pickle"]) == 0
    assert checkpoints.load(dst2)[0].keys() == state.keys()


def test_convert_plain_checkpoint_needs_no_trust(tmp_path):
    torch.manual_seed(3)
    small = models.SmallCNN(10)
    src = tmp_path / "small.ckpt"
    torch.save(_robustness_checkpoint(small), src)
    out = models.convert_robustness_checkpoint(src)  # default output name beside the source
    assert out == tmp_path / "small.weights.pt" and checkpoints.sidecar_path(out).is_file()
    _assert_same_weights(models.load_robustness_checkpoint(out, "small-cnn", num_classes=10), small)
    with pytest.raises(ValueError, match="overwrite"):
        models.convert_robustness_checkpoint(src, src, trust_pickle=True)
    with pytest.raises(CheckpointNotFoundError):
        models.convert_robustness_checkpoint(tmp_path / "missing.ckpt", trust_pickle=True)


def test_extract_robustness_state_dict_rejects_odd_layouts():
    with pytest.raises(ValueError, match="module.model"):
        models.extract_robustness_state_dict({"model": {"module.attacker.model.fc.weight": torch.zeros(1)}})
    with pytest.raises(ValueError, match="non-tensor"):
        models.extract_robustness_state_dict({"fc.weight": torch.zeros(1), "fc.note": "x"})
    sd = models.extract_robustness_state_dict({"model": {"model.fc.weight": torch.ones(1),
                                                         "attacker.model.fc.weight": torch.ones(1),
                                                         "normalizer.new_mean": torch.ones(3)}})
    assert list(sd) == ["fc.weight"]


def test_load_torchvision_weights(tmp_path, tv_resnet18):
    path = tmp_path / "resnet18.pth"
    torch.save(tv_resnet18.state_dict(), path)  # bare torchvision names, no sidecar
    model = models.build_model("resnet18-imagenet", 10, models.IMAGENET_MEAN, models.IMAGENET_STD)
    model.eval()
    report = models.load_torchvision_weights(model, path)
    _assert_same_weights(model, tv_resnet18)
    assert not model.training and not report.kept and not report.dropped
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor(models.IMAGENET_MEAN))

    # a new head (e.g. CUB's 200 classes on ImageNet weights): backbone loaded, fc left at its initialisation
    model200 = models.build_model("resnet18-imagenet", 200)
    fc_init = model200.net.fc.weight.detach().clone()
    with pytest.raises(ValueError, match="net.fc.weight: file \\(10, 512\\), model \\(200, 512\\)"):
        models.load_torchvision_weights(model200, path)
    report = models.load_torchvision_weights(model200, path, new_head=True)
    assert report.kept == ["net.fc.weight", "net.fc.bias"] and set(report.dropped) == set(report.kept)
    assert torch.equal(model200.net.fc.weight, fc_init)
    assert torch.equal(model200.net.layer4[1].conv2.weight, tv_resnet18.layer4[1].conv2.weight)
    pre = models.build_model("resnet18-imagenet", 200, pretrained=path)
    assert torch.equal(pre.net.conv1.weight, tv_resnet18.conv1.weight)

    # missing backbone weights are an error even with new_head
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in tv_resnet18.state_dict().items() if not k.startswith("layer4")}, partial)
    with pytest.raises(ValueError, match="missing from the file: net.layer4"):
        models.load_torchvision_weights(model200, partial, new_head=True)

    # an artlib state dict of the whole model (normalize + net) loads as well, mean/std included
    other = models.build_model("resnet18-imagenet", 10, mean=(0.1, 0.2, 0.3), std=(1.0, 1.0, 1.0))
    full = checkpoints.save(tmp_path / "full.pt", other.state_dict())
    models.load_torchvision_weights(model, full)
    assert torch.equal(model.normalize.mean, other.normalize.mean)


def test_load_torchvision_weights_densenet_old_keys_and_vgg_head(tmp_path):
    torch.manual_seed(4)
    dn = models.build_model("densenet121", 10)
    old = {}
    for k, v in dn.net.state_dict().items():  # torchvision's published files use 'norm.1' rather than 'norm1'
        old[k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2.")] = v
    assert any(".norm.1." in k for k in old)
    path = tmp_path / "densenet121.pth"
    torch.save(old, path)
    fresh = models.build_model("densenet121", 10)
    models.load_torchvision_weights(fresh, path)
    _assert_same_weights(fresh, dn.net)

    # torchvision VGG16 names: features.* fit, the ImageNet classifier.* is dropped, conv6/fc keep their init
    vgg = models.build_model("vgg-gap", 200)
    sd = {k: v.clone() + 1 for k, v in vgg.net.features.state_dict().items()}
    tv_like = {"features." + k: v for k, v in sd.items()}
    tv_like.update({"classifier.0.weight": torch.zeros(8, 4), "classifier.6.bias": torch.zeros(1000)})
    vpath = tmp_path / "vgg16.pth"
    torch.save(tv_like, vpath)
    report = models.load_torchvision_weights(vgg, vpath, new_head=True)
    assert set(report.dropped) == {"net.classifier.0.weight", "net.classifier.6.bias"}
    assert set(report.kept) == {"net.conv6.0.weight", "net.conv6.0.bias", "net.fc.weight", "net.fc.bias"}
    assert torch.equal(vgg.net.features[28].weight, sd["28.weight"])
