"""Model zoo for the two papers, the ReLU -> Softplus swap, and loaders for external weights.

Every model :func:`build_model` returns is a :class:`NormalizedModel`: an ``nn.Sequential`` of a :class:`Normalize`
layer (``model[0]``, ``model.normalize``) and the network (``model[1]``, ``model.net``). Models take images in
``[0, 1]``, so attacks, epsilons and attributions all live in pixel space; the dataset's mean and std are buffers of
the model (they move with ``.to(device)`` and are saved in its state dict).

Architectures (``ARCHS``) and where the papers use them:

- ``wrn-28-10``: Wide ResNet 28-10 (Zagoruyko & Komodakis 2016), pre-activation blocks; ART on CIFAR-10, GTSRB, Flowers.
- ``wrn-40-2``: Wide ResNet 40-2, same code; ART on SVHN.
- ``resnet18``: torchvision ResNet-18 with a CIFAR stem (3x3 conv, stride 1, no max-pool); Inequality on CIFAR-10.
- ``resnet18-imagenet``, ``resnet50``, ``wide-resnet50-2``: torchvision, ImageNet stem; Inequality on ImageNet
  (robust-models-transfer checkpoints), ART's WSOL on CUB (``resnet50``).
- ``densenet121`` (ImageNet stem) and ``densenet121-cifar`` (3x3 stride-1 stem, no max-pool): torchvision
  DenseNet-121; Inequality on CIFAR-10.
- ``vgg-gap``: VGG16 with the GAP head of ADL (Choe & Shim 2019; wsolevaluation's ``VggCam``); ART's WSOL Table 2.
- ``small-cnn``: 3 conv + 1 fc layers, any input size; the smoke profile on a CPU.

All ReLUs are ``nn.ReLU`` modules with ``inplace=False`` (torchvision's in-place ReLUs are switched off at build
time, and DenseNet's functional final ReLU is made a module), so :func:`softplus_relu` can swap every one of them
and captum's layer hooks never meet an in-place op. ``cam_layer(model)`` (or ``model.cam_layer``) is the module whose
output is the last feature map before global average pooling (post-ReLU), for CAM and Grad-CAM;
``model.fc_layer`` is the linear classifier on top of it.

Example:
    >>> from artlib import models
    >>> model = models.build_model("small-cnn", num_classes=10, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
    >>> logits = model(torch.rand(2, 3, 32, 32))          # inputs in [0, 1]
    >>> with models.softplus_relu(model, beta=50.0):      # smooth model for second derivatives (ART, Sec. 3)
    ...     logits_smooth = model(torch.rand(2, 3, 32, 32))
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import torch
import torchvision
from torch import nn

from artlib import checkpoints, fetch
from artlib.checkpoints import CheckpointError, CheckpointNotFoundError, UnsafeCheckpointError

__all__ = ["ARCHS", "IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "NormalizedModel", "WideResNet", "SmallCNN",
           "build_model", "cam_layer", "swap_relu", "softplus_relu", "LoadReport", "load_torchvision_weights",
           "extract_robustness_state_dict", "load_robustness_checkpoint", "convert_robustness_checkpoint",
           "IMAGENET_WEIGHTS", "imagenet_weights"]

ARCHS = ("wrn-28-10", "wrn-40-2", "resnet18", "resnet18-imagenet", "resnet50", "wide-resnet50-2", "densenet121",
         "densenet121-cifar", "vgg-gap", "small-cnn")
#: Smallest square input side each arch runs on (its pooling stages; measured with one forward pass at each size,
#: every larger side works). Archs not listed take any size.
MIN_INPUT_SIZE = {"small-cnn": 4, "vgg-gap": 16, "densenet121-cifar": 8, "densenet121": 29}

#: ImageNet mean / std (torchvision; also MadryLab ``robustness`` for the robust-models-transfer checkpoints).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------------------------------
# Normalisation and the wrapper
# ----------------------------------------------------------------------------------------------------------------------

class Normalize(nn.Module):
    r"""Per-channel standardisation ``(x - mean) / std`` as the model's first layer.

    Keeping the normalisation inside the model lets every attack, epsilon and attribution work on ``[0, 1]`` pixels.
    ``mean`` and ``std`` are buffers of shape ``[C, 1, 1]``: they follow ``.to(device)`` / ``.double()`` and are part
    of the state dict (``normalize.mean``, ``normalize.std``).

    Args:
        mean (sequence of float): per-channel mean, length C.
        std (sequence of float): per-channel standard deviation, length C, all > 0.

    Shape:
        input ``[..., C, H, W]``, output the same shape.

    Example:
        >>> norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        >>> norm(torch.ones(1, 3, 2, 2)).unique()
        tensor([2.])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() == 0 or mean_t.shape != std_t.shape:
            raise ValueError(f"mean and std must be non-empty and of equal length, got {tuple(mean_t.tolist())} "
                             f"and {tuple(std_t.tolist())}")
        if not bool(torch.all(std_t > 0)) or not bool(torch.all(torch.isfinite(mean_t))):
            raise ValueError(f"std must be > 0 and mean finite, got mean {tuple(mean_t.tolist())}, "
                             f"std {tuple(std_t.tolist())}")
        self.register_buffer("mean", mean_t.view(-1, 1, 1))
        self.register_buffer("std", std_t.view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[-3] != self.mean.shape[0]:
            raise ValueError(f"Normalize expects [..., {self.mean.shape[0]}, H, W] images, got shape {tuple(x.shape)}")
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        fmt = lambda t: "(" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + ")"  # noqa: E731
        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"


class NormalizedModel(nn.Sequential):
    """``nn.Sequential(normalize=Normalize(mean, std), net=<network>)`` plus what CAM and weight loading need.

    Args:
        net (nn.Module): the network; takes normalised images.
        mean, std (sequence of float): see :class:`Normalize`.
        arch (str, optional): the :data:`ARCHS` name, for messages and loaders.
        cam_layer (str, optional): dotted name (from this model) of the module whose output is the last feature map.
        fc_layer (str, optional): dotted name of the final linear classifier.
        head (tuple of str): state-dict prefixes inside ``net`` that belong to the classification head (left at
            their initialisation when ImageNet weights are loaded into a model with a new head).

    Attributes:
        normalize (Normalize): ``model[0]``.
        net (nn.Module): ``model[1]``.
        cam_layer (nn.Module): the feature layer for CAM / Grad-CAM (resolved by name, so it stays valid after
            modules are swapped).
        fc_layer (nn.Linear): the classifier.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], *, arch: str | None = None,
                 cam_layer: str | None = None, fc_layer: str | None = None, head: tuple[str, ...] = ()):
        super().__init__(OrderedDict([("normalize", Normalize(mean, std)), ("net", net)]))
        self.arch = arch
        self.cam_layer_name = cam_layer
        self.fc_layer_name = fc_layer
        self.head_prefixes = tuple(head)

    @property
    def cam_layer(self) -> nn.Module:
        if not self.cam_layer_name:
            raise LookupError(f"model {self.arch or type(self.net).__name__} names no CAM layer")
        return self.get_submodule(self.cam_layer_name)

    @property
    def fc_layer(self) -> nn.Module:
        if not self.fc_layer_name:
            raise LookupError(f"model {self.arch or type(self.net).__name__} names no classifier layer")
        return self.get_submodule(self.fc_layer_name)


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer whose output is the model's last (post-ReLU) feature map, for CAM and Grad-CAM.

    ``wrn-*``, ``small-cnn``, ``densenet121*``: ``net.features``; ``resnet*``: ``net.layer4``; ``vgg-gap``:
    ``net.conv6`` (the extra conv + ReLU of the GAP head). Pass it to captum's ``LayerGradCam(model, layer)``.

    Args:
        model (nn.Module): a model from :func:`build_model` (or any module with a ``cam_layer_name`` attribute).

    Returns:
        nn.Module: the feature layer.

    Example:
        >>> from captum.attr import LayerGradCam
        >>> model = build_model("resnet18", 10)
        >>> cam = LayerGradCam(model, cam_layer(model)).attribute(torch.rand(2, 3, 32, 32), target=3)
    """
    name = getattr(model, "cam_layer_name", None)
    if not name:
        raise TypeError(f"{type(model).__name__} has no cam_layer_name; build it with artlib.models.build_model")
    return model.get_submodule(name)


# ----------------------------------------------------------------------------------------------------------------------
# Architectures
# ----------------------------------------------------------------------------------------------------------------------

class _WRNBlock(nn.Module):
    """Pre-activation wide basic block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, plus the shortcut.

    As in Zagoruyko & Komodakis's code: when the width changes, the shortcut is a 1x1 conv applied to the block's
    pre-activated input ``relu1(bn1(x))``; otherwise it is the identity on ``x``.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = (nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
                         if in_planes != out_planes or stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu1(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(o)
        y = self.conv2(self.dropout(self.relu2(self.bn2(self.conv1(o)))))
        return y + identity


class WideResNet(nn.Module):
    """Wide ResNet WRN-depth-k for small images (Zagoruyko & Komodakis, BMVC 2016, https://arxiv.org/abs/1605.07146).

    A 3x3 conv with 16 channels, three groups of ``(depth - 4) / 6`` pre-activation blocks of widths 16k, 32k, 64k
    (strides 1, 2, 2), a final BN-ReLU, global average pooling (adaptive, so any input size works: 32x32 for CIFAR,
    128x128 for Flowers) and a linear layer. Initialisation as in the authors' code: He-normal (fan out) convs,
    BN weight 1 / bias 0, linear bias 0. WRN-28-10 has 36.5M parameters.

    Args:
        depth (int): 6n + 4 (28 or 40 in ART). Default 28.
        widen_factor (int): k. Default 10.
        num_classes (int): outputs. Default 10.
        dropout (float): dropout between the two convs of a block (0 = none, as in ART's runs). Default 0.
        in_channels (int): input channels. Default 3.

    Example:
        >>> WideResNet(40, 2, num_classes=10)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, dropout: float = 0.0,
                 in_channels: int = 3):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        w = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]

        def group(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(*[_WRNBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, dropout)
                                   for i in range(n)])

        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, w[0], 3, stride=1, padding=1, bias=False)),
            ("block1", group(w[0], w[1], 1)),
            ("block2", group(w[1], w[2], 2)),
            ("block3", group(w[2], w[3], 2)),
            ("bn", nn.BatchNorm2d(w[3])),
            ("relu", nn.ReLU()),
        ]))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(w[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.features(x))))


class SmallCNN(nn.Module):
    """A small CNN for smoke runs on a CPU: conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-maxpool, conv3x3(128)-ReLU,
    global average pooling, linear.

    Four conv/fc layers, about 94k parameters; adaptive pooling makes it accept any input size of at least 4x4.
    No BatchNorm, so train and eval mode compute the same function.

    Args:
        num_classes (int): outputs.
        in_channels (int): input channels. Default 3.
        width (int): channels of the first conv (then 2x, 4x). Default 32.

    Example:
        >>> SmallCNN(10)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, in_channels: int = 3, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, width, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
            ("conv3", nn.Conv2d(2 * width, 4 * width, 3, padding=1)), ("relu3", nn.ReLU()),
        ]))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.features(x))))


def _no_inplace_relu(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    return net


def _cifar_stem_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _resnet(arch: str, num_classes: int, in_channels: int):
    ctor = {"resnet18": torchvision.models.resnet18, "resnet18-imagenet": torchvision.models.resnet18,
            "resnet50": torchvision.models.resnet50, "wide-resnet50-2": torchvision.models.wide_resnet50_2}[arch]
    net = ctor(weights=None, num_classes=num_classes)
    if arch == "resnet18":  # CIFAR stem: 3x3 conv, stride 1, no max-pool (32x32 -> 4x4 feature map)
        net.conv1 = _cifar_stem_conv(in_channels, 64)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    return net, "net.layer4", "net.fc", ("fc.",)


def _densenet(arch: str, num_classes: int, in_channels: int):
    tv = torchvision.models.densenet121(weights=None, num_classes=num_classes)
    features = tv.features
    if arch == "densenet121-cifar":
        features.conv0 = _cifar_stem_conv(in_channels, 64)
        features.pool0 = nn.Identity()
    elif in_channels != 3:
        features.conv0 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(features.conv0.weight)
    # torchvision applies F.relu after features.norm5 inside forward(); make it a module so it can be swapped.
    features.add_module("relu5", nn.ReLU())
    net = nn.Sequential(OrderedDict([("features", features), ("avgpool", nn.AdaptiveAvgPool2d(1)),
                                     ("flatten", nn.Flatten(1)), ("classifier", tv.classifier)]))
    return net, "net.features", "net.classifier", ("classifier.",)


def _vgg_gap(num_classes: int, in_channels: int):
    # VGG16 ("D") conv1_1 ... conv5_3 + ReLU with the 5th max-pool removed; module indices (state-dict names) as in
    # torchvision's vgg16().features, built without its 138M-parameter classifier; torchvision's VGG initialisation.
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=False)[:-1]
    if in_channels != 3:
        features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    conv6 = nn.Conv2d(512, 1024, 3, padding=1)
    nn.init.kaiming_normal_(conv6.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv6.bias)
    fc = nn.Linear(1024, num_classes)
    nn.init.normal_(fc.weight, 0.0, 0.01)
    nn.init.zeros_(fc.bias)
    net = nn.Sequential(OrderedDict([("features", features), ("conv6", nn.Sequential(conv6, nn.ReLU())),
                                     ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten(1)), ("fc", fc)]))
    # "classifier." names the ImageNet VGG16 head in torchvision files: dropped when loading them.
    return net, "net.conv6", "net.fc", ("conv6.", "fc.", "classifier.")


def build_model(arch: str, num_classes: int, mean: Sequence[float] = (0.5, 0.5, 0.5),
                std: Sequence[float] = (0.5, 0.5, 0.5), pretrained: str | os.PathLike | None = None) -> NormalizedModel:
    r"""Build ``Normalize(mean, std)`` followed by the network ``arch``, taking images in ``[0, 1]``.

    Architectures (see the module docstring for which paper uses which):

    - ``wrn-28-10``, ``wrn-40-2``: :class:`WideResNet` (Zagoruyko & Komodakis 2016), the networks of ART's
      Sec. 4 / appendix A.3 (WRN-28-10 for CIFAR-10, GTSRB and Flowers; WRN-40-2 for SVHN).
    - ``resnet18``: torchvision ResNet-18 with a CIFAR stem (``conv1`` = 3x3, stride 1; ``maxpool`` = identity),
      for 32x32 inputs. ``resnet18-imagenet``, ``resnet50``, ``wide-resnet50-2``: torchvision, ImageNet stem.
    - ``densenet121``: torchvision DenseNet-121 (ImageNet stem); ``densenet121-cifar``: its 3x3 stride-1 stem without
      max-pool, for 32x32. The final ReLU is a module ``net.features.relu5``; state-dict names match torchvision.
    - ``vgg-gap``: VGG16-GAP as in ADL (Choe & Shim, CVPR 2019) and wsolevaluation's ``VggCam``: torchvision VGG16
      (no BN) ``features`` without the 5th max-pool (feature stride 16: 14x14 maps at 224x224), then ``conv6``
      (3x3, 512 -> 1024) + ReLU, global average pooling and ``fc`` (1024 -> classes). The ADL attention-dropout
      layers are not included (they are a training-time regulariser of that baseline and the identity at test time).
    - ``small-cnn``: :class:`SmallCNN`, for smoke runs.

    The number of input channels is ``len(mean)``. Every ReLU is a non-in-place ``nn.ReLU`` module. The model is
    returned on the CPU in training mode, like any new ``nn.Module``.

    Args:
        arch (str): one of :data:`ARCHS`.
        num_classes (int): number of outputs.
        mean (sequence of float): the dataset's per-channel mean (pixel scale [0, 1]). Default (0.5, 0.5, 0.5).
        std (sequence of float): the dataset's per-channel std. Default (0.5, 0.5, 0.5).
        pretrained (path, optional): a local file with torchvision-format weights (e.g. ImageNet ``resnet50``), or an
            artlib checkpoint of the same arch, or a (converted) robust-models-transfer file; loaded with
            :func:`load_torchvision_weights`. When ``num_classes``
            differs from 1000 (or for ``vgg-gap``, whose head is new) the classification head keeps its fresh
            initialisation and every other weight must be in the file. ``"imagenet"``: torchvision's ImageNet weights
            for ``arch`` (:func:`imagenet_weights`, downloaded once, hash-checked).

    Returns:
        NormalizedModel: ``model[0]`` is the :class:`Normalize`, ``model[1]`` (``model.net``) the network;
        ``model.cam_layer`` the last feature layer, ``model.fc_layer`` the classifier.

    Raises:
        ValueError: unknown ``arch`` (the message lists :data:`ARCHS`), or a bad ``num_classes`` / ``mean`` / ``std``.

    Example:
        >>> model = build_model("wrn-28-10", 10, mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))
        >>> model.eval()(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> cub = build_model("resnet50", 200, IMAGENET_MEAN, IMAGENET_STD, pretrained="weights/resnet50.pth")
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    normalize = Normalize(mean, std)  # validates mean / std before the (slow) network is built
    in_channels = normalize.mean.shape[0]

    if arch in ("wrn-28-10", "wrn-40-2"):
        depth, k = (28, 10) if arch == "wrn-28-10" else (40, 2)
        spec = (WideResNet(depth, k, num_classes, in_channels=in_channels), "net.features", "net.fc", ("fc.",))
    elif arch in ("resnet18", "resnet18-imagenet", "resnet50", "wide-resnet50-2"):
        spec = _resnet(arch, num_classes, in_channels)
    elif arch in ("densenet121", "densenet121-cifar"):
        spec = _densenet(arch, num_classes, in_channels)
    elif arch == "vgg-gap":
        spec = _vgg_gap(num_classes, in_channels)
    else:  # small-cnn
        spec = (SmallCNN(num_classes, in_channels), "net.features", "net.fc", ("fc.",))
    net, cam_name, fc_name, head = spec
    model = NormalizedModel(_no_inplace_relu(net), mean, std, arch=arch, cam_layer=cam_name, fc_layer=fc_name,
                            head=head)
    if pretrained is not None:
        path = imagenet_weights(arch) if str(pretrained) == "imagenet" else pretrained
        load_torchvision_weights(model, path, new_head=(num_classes != 1000 or arch == "vgg-gap"))
    return model


# torchvision's ImageNet weights (IMAGENET1K_V1: what ``pretrained=True`` gave, the weights ART B.1 / the authors'
# WSOL code and ADL's VGG16-GAP fine-tune). vgg-gap takes VGG16's convolutional features; its head is new.
IMAGENET_WEIGHTS = {"resnet50": "ResNet50_Weights", "resnet18-imagenet": "ResNet18_Weights",
                    "wide-resnet50-2": "Wide_ResNet50_2_Weights", "densenet121": "DenseNet121_Weights",
                    "vgg-gap": "VGG16_Weights"}


def imagenet_weights(arch: str, progress: bool = True) -> Path:
    """The local file of torchvision's ``IMAGENET1K_V1`` weights for ``arch``, downloaded once into torch hub's cache
    (``$TORCH_HOME/hub/checkpoints``, where torchvision keeps them) through :func:`weights_file`: resumable, an HTML
    page refused, and the sha256 prefix in the file name checked as torch hub does.

    What ``pretrained="imagenet"`` (:func:`build_model`, the paper profile's CUB-200 default, ART B.1) resolves to.

    Args:
        arch (str): one of :data:`IMAGENET_WEIGHTS`' keys. progress (bool): download progress bar.

    Returns:
        Path: e.g. ``~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth``.

    Raises:
        ValueError: ``arch`` has no ImageNet weights. CheckpointError: the download failed (offline, or the hash
        differs); the one-line message names the URL, the cache folder and the ``pretrained=`` override.

    Example:
        >>> imagenet_weights("resnet50").name
        'resnet50-0676ba61.pth'
    """
    if arch not in IMAGENET_WEIGHTS:
        raise ValueError(f"pretrained='imagenet': no torchvision ImageNet weights for arch {arch!r}; "
                         f"choices: {', '.join(IMAGENET_WEIGHTS)}")
    url = getattr(torchvision.models, IMAGENET_WEIGHTS[arch]).IMAGENET1K_V1.url
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return weights_file(url, cache=folder, progress=progress)
    except fetch.FetchError as exc:
        raise CheckpointError(f"pretrained='imagenet': {exc}; put {fetch.file_name(url)} into {folder} by hand, or "
                              f"pass pretrained=<local weights file> (pretrained='none': random initialisation)"
                              ) from None


#: Where weights given by URL are kept: ``$ARTLIB_WEIGHTS``, else ``<torch hub dir>/artlib``.
WEIGHTS_ENV = "ARTLIB_WEIGHTS"


def is_url(src) -> bool:
    """Whether ``src`` is an ``http(s)://`` URL (else a local path)."""
    return isinstance(src, str) and src.lower().startswith(("http://", "https://"))


def weights_file(src: str | os.PathLike, sha256: str | None = None, cache: str | os.PathLike | None = None,
                 progress: bool = True) -> Path:
    """The local file of a weights source: a path as it is, or an ``http(s)`` URL downloaded once.

    A URL goes through :func:`artlib.fetch.fetch` (resumable; an HTML page or a truncated body refused in one line;
    ``$ARTLIB_MIRROR`` honoured) into ``cache`` (default ``$ARTLIB_WEIGHTS``, else ``<torch hub dir>/artlib``),
    verified against ``sha256`` when given and, as torch hub does on download, against the sha256 prefix in a file
    name like ``resnet50-0676ba61.pth``. A file already in the cache (that matches ``sha256`` when given) is used as
    it is. What the
    file holds is checked when it is loaded (``weights_only=True``, tensors only).

    Raises:
        artlib.fetch.FetchError: the download failed or a checksum differs (the file is removed).
        CheckpointNotFoundError: a local path that does not exist.

    Example:
        >>> weights_file("https://download.pytorch.org/models/resnet50-0676ba61.pth")      # doctest: +SKIP
        PosixPath('/root/.cache/torch/hub/artlib/resnet50-0676ba61.pth')
    """
    if not is_url(src):
        path = Path(src)
        if not path.is_file():
            raise CheckpointNotFoundError(f"checkpoint not found: {path}")
        if sha256 and fetch.digest(path) != sha256.lower():
            raise CheckpointError(f"{path}: sha256 {fetch.digest(path)} differs from the expected {sha256}")
        return path
    folder = Path(cache if cache is not None else os.environ.get(WEIGHTS_ENV) or Path(torch.hub.get_dir()) / "artlib")
    cached = (folder / fetch.file_name(src)).is_file()
    dest = fetch.fetch(src, folder / fetch.file_name(src), sha256=sha256, progress=progress)
    prefix = re.search(r"-([a-f0-9]{8,64})\.[a-z]+$", dest.name)
    if prefix and not cached and not fetch.digest(dest).startswith(prefix.group(1)):
        got = fetch.digest(dest)
        dest.unlink()
        raise fetch.FetchError(f"{fetch.mirror_url(src)}: sha256 {got} does not start with {prefix.group(1)}, the "
                               f"prefix in the file name")
    return dest


# ----------------------------------------------------------------------------------------------------------------------
# ReLU -> Softplus swap
# ----------------------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def swap_relu(model: nn.Module, factory: Callable[[nn.ReLU], nn.Module]) -> Iterator[nn.Module]:
    """Context manager: replace every ``nn.ReLU`` module of ``model`` by ``factory(relu)``; restore them on exit.

    Every place a ReLU is registered is swapped (in-place ReLUs and subclasses included); a ReLU object registered
    (or called) in several places maps to one replacement, so weight-sharing structure is preserved. The original
    module objects are put back on exit, also when the body raises. Each replacement gets its ReLU's train/eval flag;
    the model's own mode is not touched. The swap mutates ``model`` (visible to every user of that object while
    inside); nesting is allowed (an inner swap finds no ReLU left and does nothing).

    Args:
        model (nn.Module): the model to modify in place for the duration of the block.
        factory (callable): ``factory(relu) -> nn.Module``, called once per distinct ReLU module.

    Yields:
        nn.Module: ``model`` itself.

    Example:
        >>> with swap_relu(model, lambda relu: nn.GELU()):
        ...     out = model(x)
    """
    if isinstance(model, nn.ReLU):
        raise ValueError("swap_relu needs a container module; it cannot replace the ReLU it was given itself")
    replaced: list[tuple[nn.Module, str, nn.Module]] = []
    new_for: dict[int, nn.Module] = {}
    try:
        for parent in list(model.modules()):
            for name, child in list(parent._modules.items()):
                if isinstance(child, nn.ReLU):
                    new = new_for.get(id(child))
                    if new is None:
                        new = factory(child)
                        new.train(child.training)
                        new_for[id(child)] = new
                    parent._modules[name] = new
                    replaced.append((parent, name, child))
        yield model
    finally:
        for parent, name, original in reversed(replaced):
            parent._modules[name] = original


def softplus_relu(model: nn.Module, beta: float = 50.0, threshold: float = 20.0):
    r"""Context manager: every ReLU of ``model`` becomes ``Softplus(beta)`` inside the block, and ReLU again after.

    ART (Singh et al., ECCV 2020, Sec. 3) needs second derivatives of the network through its input gradients (the
    attribution loss and its inner maximisation); ReLU's second derivative is zero almost everywhere, so, following
    Dombrowski et al. (NeurIPS 2019) and Chen et al. (RAR, 2019), those computations use
    :math:`\mathrm{softplus}_\beta(x) = \frac{1}{\beta}\log(1 + e^{\beta x})`, with :math:`\beta = 50` in all of
    ART's experiments (Sec. 4). The authors' code does the same with a second (Softplus) path
    in every block; the cross-entropy term uses the ReLU network. The Softplus modules are not in-place, so double
    backpropagation works even where the original ReLUs were ``inplace=True``.

    Args:
        model (nn.Module): model whose ``nn.ReLU`` modules are swapped (see :func:`swap_relu`).
        beta (float): :math:`\beta` of the softplus. Default 50 (ART).
        threshold (float): ``nn.Softplus``'s linear region, for :math:`\beta x >` threshold. Default 20.

    Yields:
        nn.Module: ``model``.

    Example:
        >>> x = torch.rand(2, 3, 32, 32, requires_grad=True)
        >>> with softplus_relu(model, beta=50.0):
        ...     g, = torch.autograd.grad(model(x)[:, 0].sum(), x, create_graph=True)
        ...     hvp, = torch.autograd.grad((g * g).sum(), x)   # non-zero: curvature through the softplus
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    return swap_relu(model, lambda relu: nn.Softplus(beta=beta, threshold=threshold))


# ----------------------------------------------------------------------------------------------------------------------
# External weights
# ----------------------------------------------------------------------------------------------------------------------

class LoadReport(NamedTuple):
    """What :func:`load_torchvision_weights` did: state-dict keys (of ``model``) loaded, kept at their
    initialisation (new head, or BN counters absent from old files), and file keys dropped (old head)."""

    loaded: list[str]
    kept: list[str]
    dropped: list[str]


def _convert_hint(path: Path) -> str:
    out = path.with_name(path.stem + ".weights.pt")
    return (f"convert it once, only if you trust its source: `python -m artlib models convert {path} --out {out} "
            f"--trust-pickle` (needs `pip install dill`), then load {out}")


def _load_weights_only(path: str | os.PathLike):
    """checkpoints.load with the robust-models-transfer conversion hint on a weights_only refusal."""
    path = Path(path)
    try:
        state, _ = checkpoints.load(path)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{exc}; {_convert_hint(path)}") from exc
    return state


def _tensor_state_dict(obj, source: Path) -> dict:
    """The state dict inside ``obj`` (:func:`_unwrap_state_dict`), refused unless every entry is a tensor."""
    sd = _unwrap_state_dict(obj)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad or not sd:
        raise UnsafeCheckpointError(f"{source} is not a tensor-only state dict ("
                                    + (f"non-tensor entries: {bad[:5]}" if bad else "no entries")
                                    + f"); {_convert_hint(source)}")
    return sd


def _unwrap_state_dict(obj) -> dict:
    """The tensor dict inside ``obj``: ``obj['model']`` / ``obj['state_dict']`` when those are dicts, else ``obj``."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                return obj[key]
        return obj
    raise ValueError(f"expected a state dict (a dict of tensors), got {type(obj).__name__}")


_DENSENET_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                               r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def load_torchvision_weights(model: NormalizedModel, path: str | os.PathLike, new_head: bool = False,
                             sha256: str | None = None) -> LoadReport:
    """Load a torchvision-format state dict (e.g. ImageNet weights; a file or a URL) into ``model.net``.

    The file's keys are the bare torchvision names (``conv1.weight``, ``layer1.0.bn1.running_mean``, ...); they are
    mapped into the wrapped network (``net.conv1.weight``), and the :class:`Normalize` buffers keep the model's
    mean/std. Also accepted: a ``{"model": sd}`` / ``{"state_dict": sd}`` wrapper, ``module.`` (DataParallel) prefixes,
    DenseNet's old ``norm.1`` key style (remapped as torchvision does), a robust-models-transfer state dict
    (``module.model.*`` kept, see :func:`extract_robustness_state_dict`), and an artlib state dict of the whole model
    (``normalize.*`` + ``net.*``; its mean/std are then loaded too). The file is read with ``weights_only=True`` and
    its sidecar sha256 is checked when there is one. Train/eval mode is untouched.

    Args:
        model (NormalizedModel): from :func:`build_model`.
        path (path or str): the weights file (e.g. torchvision's ``resnet50-11ad3fa6.pth``), or an ``http(s)`` URL
            fetched once into the weights cache (:func:`weights_file`).
        new_head (bool): when True, the classification head (``model.head_prefixes``: ``fc`` / ``classifier``, and
            ``conv6`` for ``vgg-gap``) may be missing from the file or have another shape: it then keeps its fresh
            initialisation, and the file's old head is dropped. Every other weight must match. Default False: every
            weight must match exactly.
        sha256 (str, optional): expected sha256 of the file (checked for a URL's download and a local file).

    Returns:
        LoadReport: ``(loaded, kept, dropped)`` key lists.

    Raises:
        CheckpointNotFoundError: no such file. UnsafeCheckpointError: the file is not a tensor-only state dict (the
        message gives the conversion command). artlib.fetch.FetchError: a URL's download failed or a checksum differs. ValueError: keys or shapes do not match (the message lists them).

    Example:
        >>> model = build_model("resnet50", 200, IMAGENET_MEAN, IMAGENET_STD)
        >>> report = load_torchvision_weights(model, "weights/resnet50-11ad3fa6.pth", new_head=True)
        >>> report.kept
        ['net.fc.weight', 'net.fc.bias']
    """
    path = weights_file(path, sha256)
    sd = _tensor_state_dict(_load_weights_only(path), path)
    if any(k.startswith(("module.model.", "module.attacker.", "module.normalizer.")) for k in sd):
        sd = extract_robustness_state_dict(sd)  # a robust-models-transfer file that weights_only could read
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if any(k.startswith(("normalize.", "net.")) for k in sd):
        prefix, file_sd = "", dict(sd)
    else:
        prefix = "net."
        file_sd = {}
        for k, v in sd.items():
            m = _DENSENET_OLD_KEY.match(k) if (model.arch or "").startswith("densenet") else None
            file_sd[prefix + (m.group(1) + m.group(2) if m else k)] = v
    return _load_into(model, file_sd, source=path, new_head=new_head,
                      skip_normalize=(prefix == "net."))


def _load_into(model: NormalizedModel, file_sd: dict, source: Path, new_head: bool, skip_normalize: bool) -> LoadReport:
    """Copy ``file_sd`` (keys named as in ``model.state_dict()``) into ``model`` under the rules documented above."""
    target = model.state_dict()
    head = tuple("net." + p for p in getattr(model, "head_prefixes", ()))
    loaded, kept, dropped, missing, mismatched = [], [], [], [], []
    for key, cur in target.items():
        if skip_normalize and key.startswith("normalize."):
            continue
        val = file_sd.get(key)
        if isinstance(val, torch.Tensor) and val.shape == cur.shape:
            loaded.append(key)
        elif (new_head and key.startswith(head)) or (val is None and key.endswith("num_batches_tracked")):
            kept.append(key)
        elif val is None:
            missing.append(key)
        else:
            got = tuple(val.shape) if isinstance(val, torch.Tensor) else type(val).__name__
            mismatched.append(f"{key}: file {got}, model {tuple(cur.shape)}")
    unexpected, kept_set = [], set(kept)
    for key in file_sd:
        if key in kept_set:
            dropped.append(key)  # the file's head, replaced by a new one
        elif key not in target:
            (dropped if new_head and key.startswith(head) else unexpected).append(key)
    if missing or mismatched or unexpected:
        def show(keys):
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
        parts = [f"missing from the file: {show(missing)}" if missing else "",
                 f"shape mismatch: {show(mismatched)}" if mismatched else "",
                 f"not in the model: {show(unexpected)}" if unexpected else ""]
        hint = "" if new_head else " (pass new_head=True to keep a freshly initialised classification head)"
        raise ValueError(f"weights in {source} do not fit arch {model.arch!r}: "
                         + "; ".join(p for p in parts if p) + hint)
    new_state = dict(target)
    for key in loaded:
        new_state[key] = file_sd[key]
    model.load_state_dict(new_state, strict=True)
    return LoadReport(loaded, kept, dropped)


def extract_robustness_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """The classifier's plain (torchvision-named) state dict from a microsoft/robust-models-transfer checkpoint.

    Format (MadryLab ``robustness``: ``train.py`` saves ``{'model', 'optimizer', 'schedule', 'epoch', 'amp'}`` with
    ``pickle_module=dill``): the state dict of ``DataParallel(AttackerModel)`` under ``'model'`` (legacy:
    ``'state_dict'``), so every key starts with ``module.``; ``module.model.*`` is the torchvision-style classifier,
    ``module.attacker.model.*`` a duplicate reference to it, ``module.normalizer.*`` / ``module.attacker.normalize.*``
    the mean/std buffers. This keeps exactly the ``module.model.*`` entries and strips that prefix (also
    ``model.*`` without ``module.``). A state dict that is already plain is returned as is.

    Args:
        checkpoint (dict): the loaded checkpoint (or its inner state dict).

    Returns:
        dict: ``{torchvision key: tensor}``.

    Example:
        >>> sd = extract_robustness_state_dict(torch.load("resnet50_linf_eps4.0.weights.pt", weights_only=True))
        >>> torchvision.models.resnet50().load_state_dict(sd)
    """
    sd = _unwrap_state_dict(checkpoint)
    if any(k.startswith("module.model.") for k in sd):
        out = {k[len("module.model."):]: v for k, v in sd.items() if k.startswith("module.model.")}
    elif any(k.startswith("model.") for k in sd) and any(k.startswith(("attacker.", "normalizer.")) for k in sd):
        out = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    else:
        if any(k.startswith(("module.attacker.", "module.normalizer.", "attacker.", "normalizer.")) for k in sd):
            raise ValueError("robust-models-transfer checkpoint has attacker/normalizer entries but no "
                             "'module.model.*' weights")
        out = dict(sd)
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if not out or bad:
        raise ValueError(f"not a state dict of tensors (non-tensor entries: {bad[:5]})" if bad
                         else "checkpoint holds no model weights")
    return out


def load_robustness_checkpoint(path: str | os.PathLike, arch: str, num_classes: int = 1000,
                               mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                               sha256: str | None = None) -> NormalizedModel:
    """Build ``arch`` and load a microsoft/robust-models-transfer checkpoint (Salman et al., NeurIPS 2020) into it.

    These are the l-inf / l2 adversarially trained ImageNet models the Inequality paper (Duan et al., ICLR 2023,
    Sec. 4.1) evaluates (``resnet18_linf_eps4.0.ckpt`` -> arch ``resnet18-imagenet``, ``resnet50_*`` ->
    ``resnet50``, ``wide_resnet50_2_*`` -> ``wide-resnet50-2``). The file is read with ``weights_only=True`` only;
    see :func:`extract_robustness_state_dict` for the key handling. Their normalisation was external (the
    ``normalizer`` entries, ImageNet mean/std), so ``mean`` / ``std`` default to ImageNet's. A file that
    ``weights_only`` refuses (the originals are ``dill`` pickles with optimizer state) raises
    :class:`~artlib.checkpoints.UnsafeCheckpointError` telling to run
    ``python -m artlib models convert FILE --out OUT --trust-pickle`` once; the converted file loads here too.

    Args:
        path (path or str): the ``.ckpt`` file, or its converted plain state dict; or an ``http(s)`` URL of either
            (:func:`weights_file`, ``sha256`` checked when given).
        arch (str): one of :data:`ARCHS` matching the checkpoint.
        num_classes (int): classifier outputs. Default 1000.
        mean, std (sequence of float): normalisation of the returned model. Default ImageNet's.

    Returns:
        NormalizedModel: with every weight loaded (strict), in training mode like any new module.

    Example:
        >>> model = load_robustness_checkpoint("weights/resnet50_linf_eps4.0.weights.pt", "resnet50").eval()
    """
    path = weights_file(path, sha256)
    sd = extract_robustness_state_dict(_load_weights_only(path))
    model = build_model(arch, num_classes, mean, std)
    _load_into(model, {"net." + k: v for k, v in sd.items()}, source=path, new_head=False, skip_normalize=True)
    return model


def _unpickle_trusted(src: Path):
    """``torch.load(weights_only=False)``, with ``dill`` as the pickle module when it is installed."""
    try:
        import dill  # noqa: F401
        pickle_module = dill
    except ImportError:
        pickle_module = pickle
    try:
        return torch.load(src, map_location="cpu", weights_only=False, pickle_module=pickle_module)
    except ModuleNotFoundError as exc:
        raise CheckpointError(f"unpickling {src} needs the module {exc.name!r}"
                              + (": `pip install dill`" if exc.name and exc.name.startswith("dill") else "")) from exc
    except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError, AttributeError, OSError) as exc:
        raise CheckpointError(f"checkpoint {src} is truncated or corrupt "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc


def convert_robustness_checkpoint(src: str | os.PathLike, dst: str | os.PathLike | None = None,
                                  trust_pickle: bool = False, sha256: str | None = None) -> Path:
    """Convert a microsoft/robust-models-transfer checkpoint into a plain state dict with a sha256 sidecar.

    The originals are pickled with ``dill`` and hold optimizer state, so ``torch.load(weights_only=True)`` may
    refuse them; this is the one place artlib unpickles such a file, and only when ``trust_pickle=True`` (unpickling
    can run arbitrary code: use it only for files from a source you trust). A file that ``weights_only`` can read
    needs no trust. The ``module.model.*`` weights are kept with that prefix stripped (torchvision names; see
    :func:`extract_robustness_state_dict`), copied into compact tensors, and written with
    :func:`artlib.checkpoints.save` (atomic, sidecar with the source's name, sha256 and epoch). The result loads with
    ``weights_only=True`` through :func:`load_robustness_checkpoint` or ``build_model(..., pretrained=dst)``.

    Args:
        src (path or str): the original ``.ckpt``, or its ``http(s)`` URL (fetched once into the weights cache,
            :func:`weights_file`).
        dst (path, optional): output file. Default ``<src stem>.weights.pt`` beside ``src`` (its cached download).
        trust_pickle (bool): allow unpickling ``src`` (``dill`` used when installed). Default False.
        sha256 (str, optional): expected sha256 of ``src``, checked before anything is read.

    Returns:
        Path: ``dst``.

    Raises:
        UnsafeCheckpointError: the file needs unpickling and ``trust_pickle`` is False.
        CheckpointNotFoundError, CheckpointError, ValueError: missing, corrupt, or not in the expected format.

    Example:
        >>> convert_robustness_checkpoint("resnet50_linf_eps4.0.ckpt", trust_pickle=True)
        PosixPath('resnet50_linf_eps4.0.weights.pt')
    """
    src = weights_file(src, sha256)
    dst = Path(dst) if dst is not None else src.with_name(src.stem + ".weights.pt")
    if checkpoints.looks_like_html(src):
        raise CheckpointError(checkpoints.html_message(src, "a robust-models-transfer checkpoint"))
    checkpoints.verify_zip(src)  # flipped bytes fail here, before anything is unpickled or a sidecar written
    if dst.resolve() == src.resolve():
        raise ValueError(f"convert would overwrite its source {src}; choose another output path")
    try:
        state, _ = checkpoints.load(src)
    except UnsafeCheckpointError as exc:
        if not trust_pickle:
            raise UnsafeCheckpointError(
                f"{exc}. Converting it means unpickling it, which can run arbitrary code: pass trust_pickle=True "
                f"(command line: --trust-pickle) only if you trust the file's source") from exc
        state = _unpickle_trusted(src)
    sd = {k: v.detach().clone().contiguous() for k, v in extract_robustness_state_dict(state).items()}
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if isinstance(epoch, torch.Tensor):
        epoch = epoch.item()
    if epoch is not None and not isinstance(epoch, (int, float, str)):
        epoch = str(epoch)
    # What vouches for the source's bytes (load() checked it; a legacy non-zip pickle carries no checksum): the new
    # sidecar's sha256 covers only the converted file, so it must not read as a verification of the source.
    check = ("sidecar sha256" if checkpoints.read_meta(src) is not None else
             "zip CRC-32" if zipfile.is_zipfile(src) else "none (legacy pickle format: no checksum)")
    checkpoints.save(dst, sd, config={"converted_from": src.name, "source_sha256": checkpoints.sha256_file(src),
                                      "source_format": "microsoft/robust-models-transfer", "epoch": epoch,
                                      "n_tensors": len(sd), "source_check": check})
    return dst
