"""Datasets of the two papers, read from each dataset's official on-disk format.

``load_dataset(name, split)`` returns a ``torch.utils.data.Dataset`` whose items are ``(image, label)``: ``image`` a
float tensor ``[C, H, W]`` in ``[0, 1]`` (normalisation lives inside the models, see ``DATASETS[name].mean/.std``),
``label`` an int. CUB-200 items are ``(image, label, box)`` with ``box`` = ``(x0, y0, x1, y1)`` inclusive pixel corners
in the transformed image. Default image sizes: CIFAR-10 / CIFAR-10-C / SVHN / GTSRB 32x32 (GTSRB resized, ART A.3.3),
Flowers-17 128x128 (resized, ART A.3.4), CUB-200 224 (Resize(256, 256) + CenterCrop(224) as in the ART WSOL code),
ImageNet 224 (Resize(256) + CenterCrop(224)).

Data root: the ``root`` argument, else ``$ARTLIB_DATA``, else ``./data``. Layouts under the root::

    cifar-10-batches-py/            torchvision's python batches (exact images)       cifar10
    cifar10-jpeg/{train,test}/<class>/NNNN.jpg                                        cifar10
    foolbox-samples/{cifar10,imagenet}_II_L.{png,jpg}  20 exact test images each     cifar10 (test), imagenet (val)
    svhn/{train,test,extra}_32x32.mat                                                  svhn
    gtsrb/GTSRB/Final_Training/Images/000NN/GT-000NN.csv, Final_Test/GT-final_test.csv gtsrb
    flowers17/jpg/image_NNNN.jpg [+ flowers17/datasplits.mat]                           flowers17
    CUB_200_2011/{images.txt,image_class_labels.txt,train_test_split.txt,bounding_boxes.txt,images/}  cub200
    CIFAR-10-C/<corruption>.npy + labels.npy (else regenerated from CIFAR-10 test)      cifar10c
    imagenet/{train,val}/<wnid>/*.JPEG, or imagenet-samples/<wnid>_<name>.JPEG          imagenet

Example::

    >>> from artlib import data
    >>> ds = data.load_dataset("cifar10", "test", subset=100)      # 10 images per class, in dataset order
    >>> x, y = ds[0]; x.shape, ds.source
    (torch.Size([3, 32, 32]), 'cifar10-jpeg')
    >>> train = data.load_dataset("gtsrb", "train", balance=True)  # ART A.3.3: 10,000 per class, lazily augmented
"""
from __future__ import annotations

import csv
import hashlib
import inspect
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from artlib import dryrun, fetch
from artlib.corruptions import CORRUPTIONS, corrupt

DATA_ENV = "ARTLIB_DATA"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FLOWERS17_CLASSES = ("daffodil", "snowdrop", "lily_valley", "bluebell", "crocus", "iris", "tigerlily", "tulip",
                     "fritillary", "sunflower", "daisy", "colts_foot", "dandelion", "cowslip", "buttercup",
                     "windflower", "pansy")
_EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")  # in the CIFAR-10-C tar; read only
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
FOOLBOX_WHEEL = "foolbox-3.3.4-py3-none-any.whl"
FOOLBOX_SHA256 = "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is missing under the data root: names the dataset, every path looked at and how to get it."""

    def __init__(self, name: str, root: Path, looked_at: Sequence[tuple[Path, str]], hint: str | None = None):
        lines = [f"dataset {name!r} not found under the data root {root}. Looked at:"]
        lines += [f"  {p}  ({what})" for p, what in looked_at]
        lines.append(hint or f"Download it with: python -m artlib data download {name} --root {root}"
                             f"  (or set ${DATA_ENV} to a folder that holds it)")
        super().__init__("\n".join(lines))
        self.name, self.root, self.looked_at = name, root, [p for p, _ in looked_at]


class CorruptDataError(ValueError):
    """A file of a dataset is empty, truncated, not in the expected format (an HTML page saved as an image, a CIFAR
    batch of the wrong shape) or holds objects artlib refuses to unpickle; the message names the file."""


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """Data root: ``root`` if given, else ``$ARTLIB_DATA``, else ``./data`` (absolute path, not required to exist)."""
    root = root if root is not None else os.environ.get(DATA_ENV) or "data"
    return Path(root).expanduser().absolute()


# --------------------------------------------------------------------------------------------------------- base class
class ImageDataset(Dataset):
    """Base of every loader: ``targets`` (ints, known without decoding images), ``source``, lazy image decoding.

    Subclasses fill ``self.targets`` and implement ``load_image(i) -> PIL.Image`` (RGB). ``transform`` (default:
    ``default_transform(name)``) maps the PIL image to the returned tensor.
    """

    name = ""

    def __init__(self, root: Path, split: str, transform: Callable | None = None):
        self.root, self.split = Path(root), split
        self.transform = transform if transform is not None else default_transform(self.name)
        self.targets: list[int] = []
        self.source, self.path = "", self.root

    def _missing(self, looked_at, hint=None):
        return DatasetNotFoundError(self.name, self.root, looked_at, hint)

    @property
    def info(self) -> DatasetInfo:
        return DATASETS[self.name]

    def __len__(self) -> int:
        return len(self.targets)

    def _index(self, i) -> int:
        i = int(i) + (len(self) if int(i) < 0 else 0)  # negative indices count from the end, like a list
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {self.name} {self.split} with {len(self)} items")
        return i

    def load_image(self, i: int) -> Image.Image:
        raise NotImplementedError

    def __getitem__(self, i):
        i = self._index(i)
        return self.transform(self.load_image(i)), int(self.targets[i])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, n={len(self)}, source={self.source!r}, path='{self.path}')"


def _open_rgb(path) -> Image.Image:
    """The RGB image at ``path``; :class:`CorruptDataError` naming the file when it is empty, truncated, an HTML page
    or not an image."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        from artlib.checkpoints import html_message, looks_like_html
        if looks_like_html(path):
            raise CorruptDataError(html_message(path, "an image")) from None
        try:
            size = os.path.getsize(path)
        except OSError:
            size = None
        what = "is empty (0 bytes)" if size == 0 else f"cannot be read as an image ({type(exc).__name__}: {exc})"
        raise CorruptDataError(f"image file {path} {what}; it is truncated or not an image: replace it (download the "
                               f"dataset again)") from None


#: What a CIFAR python batch may unpickle besides str / bytes / int / list / dict: numpy arrays (and the pickles that
#: Python 3 writes for bytes at protocol 2). Anything else is refused before it is called.
_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside :data:`_CIFAR_GLOBALS` (its ``module.name`` is the message)."""


class _CifarUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`_CIFAR_GLOBALS`: a crafted batch cannot name (or call)
    ``os.system``, ``builtins.eval`` or any other callable."""

    def find_class(self, module, name):
        if (module, name) in _CIFAR_GLOBALS:
            return super().find_class(module, name)
        raise _RefusedGlobal(f"{module}.{name}")


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, list[int]]:
    """One CIFAR-10 python batch (``data_batch_N`` / ``test_batch``) as ``(images [N, 32, 32, 3] uint8, labels)``.

    Read with a restricted unpickler that admits only the batch's dict of str / bytes / ints / lists / numpy arrays
    (torchvision's ``pickle.load`` would run whatever a crafted file names). Raises :class:`CorruptDataError` naming
    the file when it is empty, truncated, holds other objects, or is not a batch of ``N x 3072`` uint8 rows with
    ``N`` labels in 0..9."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            d = _CifarUnpickler(fh, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise CorruptDataError(f"refusing to unpickle the CIFAR-10 batch {path}: it names the global {exc}, and a "
                               f"batch holds only a dict of str / bytes / lists / numpy arrays (a crafted or foreign "
                               f"file; nothing in it was run)") from None
    except pickle.UnpicklingError as exc:
        raise CorruptDataError(f"CIFAR-10 batch {path} is truncated or corrupt ({exc})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, OverflowError) as exc:
        what = "is empty (0 bytes)" if path.stat().st_size == 0 else \
            f"is truncated or corrupt ({type(exc).__name__}: {exc})"
        raise CorruptDataError(f"CIFAR-10 batch {path} {what}; download the dataset again") from None
    if not isinstance(d, dict):
        raise CorruptDataError(f"CIFAR-10 batch {path} holds a {type(d).__name__}, not the batch dict")
    raw, labels = d.get(b"data", d.get("data")), d.get(b"labels", d.get("labels"))
    if raw is None or labels is None:
        raise CorruptDataError(f"CIFAR-10 batch {path} lacks its 'data' / 'labels' entries (keys: "
                               f"{sorted(map(str, d))[:6]})")
    try:
        arr = np.asarray(raw)
        if arr.dtype != np.uint8:
            raise ValueError(f"dtype {arr.dtype}")
        labels = [int(y) for y in labels]
    except (TypeError, ValueError) as exc:
        raise CorruptDataError(f"CIFAR-10 batch {path}: 'data' must be uint8 and 'labels' ints ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != 3072 or arr.shape[0] != len(labels):
        raise CorruptDataError(f"CIFAR-10 batch {path}: 'data' has shape {tuple(arr.shape)} and there are "
                               f"{len(labels)} labels; expected [N, 3072] (3 x 32 x 32) rows and N labels")
    if labels and not 0 <= min(labels) <= max(labels) <= 9:
        raise CorruptDataError(f"CIFAR-10 batch {path}: labels must be in 0..9, got {min(labels)}..{max(labels)}")
    return arr.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _list_images(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.name.lower().endswith(_IMAGE_EXTS))


def _class_folders(folder: Path, classes: Sequence[str]) -> tuple[list[Path], list[int]]:
    """Per-class image folders ``folder/<class>/*``; label = position of the folder name in ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    found = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    unknown = [d for d in found if d not in index]
    if unknown:
        raise ValueError(f"{folder}: unexpected class folders {unknown[:5]} (expected names from {classes[:3]}...)")
    from tqdm.auto import tqdm
    paths, labels = [], []
    for d in tqdm(sorted(found, key=index.__getitem__), desc=f"scan {folder.name}", disable=len(found) < 100,
                  leave=False):
        names = _list_images(folder / d)
        paths += [folder / d / n for n in names]
        labels += [index[d]] * len(names)
    return paths, labels


_FOOLBOX_RE = re.compile(r"^(cifar10|imagenet|mnist)_(\d+)_(\d+)\.(png|jpg)$")


def _foolbox_files(folder: Path, dataset: str) -> list[tuple[Path, int]]:
    """The foolbox sample images of ``dataset`` in ``folder``, sorted by their index, with the label from the name."""
    if not folder.is_dir():
        return []
    hits = [(_FOOLBOX_RE.match(n), n) for n in os.listdir(folder)]
    hits = sorted((int(m[2]), folder / n, int(m[3])) for m, n in hits if m and m[1] == dataset)
    return [(p, y) for _, p, y in hits]


# ------------------------------------------------------------------------------------------------------------ loaders
class CIFAR10(ImageDataset):
    """CIFAR-10 (Krizhevsky 2009; ART Sec. 4.1.2, A.3.2): python batches, else per-class JPEG folders, else foolbox.

    Sources, first found wins: ``cifar-10-batches-py`` (torchvision's exact pickled batches), ``cifar10-jpeg/<split>/
    <class>/NNNN.jpg`` (class index = official order airplane..truck, which is also alphabetical), and for the test
    split only ``foolbox-samples/cifar10_II_L.png`` (the first 20 official test images, ``source ==
    "foolbox-samples"``). The batches are read here (torchvision's ``CIFAR10`` md5-checks them, which test fixtures
    fail); torchvision downloads them (``download``).
    """

    name, classes = "cifar10", CIFAR10_CLASSES

    def __init__(self, root, split, transform=None):
        super().__init__(root, split, transform)
        batches, jpeg, fool = self.root / "cifar-10-batches-py", self.root / "cifar10-jpeg" / split, \
            self.root / "foolbox-samples"
        self.array, self.paths = None, None
        if (batches / "batches.meta").exists():
            files = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
            missing = [batches / f for f in files if not (batches / f).exists()]
            if missing:
                raise self._missing([(p, "CIFAR-10 python batch") for p in missing])
            arrays, labels = [], []
            for f in files:
                images, ys = read_cifar_batch(batches / f)  # restricted unpickler: nothing in a batch is executed
                arrays.append(images)
                labels += ys
            self.array = np.concatenate(arrays)
            self.targets, self.source, self.path = [int(y) for y in labels], "cifar-10-batches-py", batches
        elif jpeg.is_dir():
            self.paths, self.targets = _class_folders(jpeg, CIFAR10_CLASSES)
            self.source, self.path = "cifar10-jpeg", jpeg
        elif split == "test" and _foolbox_files(fool, "cifar10"):
            self.paths, self.targets = map(list, zip(*_foolbox_files(fool, "cifar10")))
            self.source, self.path = "foolbox-samples", fool
        else:
            raise self._missing([(batches, "torchvision python batches"), (jpeg, "per-class JPEG folders"),
                                 (fool, "foolbox cifar10_*.png, test split only; `python -m artlib data "
                                        "fetch-samples` gets them from PyPI")])

    def load_image(self, i):
        return Image.fromarray(self.array[i]) if self.array is not None else _open_rgb(self.paths[i])

    @staticmethod
    def status(root: Path) -> dict:
        batches, jpeg, fool = root / "cifar-10-batches-py", root / "cifar10-jpeg", root / "foolbox-samples"
        if (batches / "batches.meta").exists():
            n = 10000 * sum((batches / f).exists() for f in ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
            return dict(found=True, path=batches, n_images=n, source="cifar-10-batches-py")
        if jpeg.is_dir():
            return dict(found=True, path=jpeg, n_images=_count_files(jpeg), source="cifar10-jpeg")
        if _foolbox_files(fool, "cifar10"):
            return dict(found=True, path=fool, n_images=len(_foolbox_files(fool, "cifar10")), source="foolbox-samples")
        return dict(found=False, path=batches)


class SVHN(ImageDataset):
    """SVHN cropped digits (Netzer et al. 2011; ART A.3.1): ``svhn/{split}_32x32.mat`` as torchvision downloads them.

    ``X`` is ``[32, 32, 3, N]`` uint8 and ``y`` holds 1..10 with 10 meaning digit 0 (mapped to label 0).
    """

    name = "svhn"

    def __init__(self, root, split, transform=None):
        super().__init__(root, split, transform)
        path = self.root / "svhn" / f"{split}_32x32.mat"
        if not path.exists():
            raise self._missing([(path, "SVHN .mat from ufldl.stanford.edu/housenumbers")])
        from scipy.io import loadmat
        mat = loadmat(path)
        self.array = np.ascontiguousarray(mat["X"].transpose(3, 0, 1, 2))
        y = mat["y"].astype(np.int64).ravel()
        self.targets, self.source, self.path = np.where(y == 10, 0, y).tolist(), "svhn-mat", path

    def load_image(self, i):
        return Image.fromarray(self.array[i])

    @staticmethod
    def status(root):
        files = [root / "svhn" / f"{s}_32x32.mat" for s in ("train", "test", "extra")]
        if not any(f.exists() for f in files):
            return dict(found=False, path=root / "svhn")
        from scipy.io import whosmat  # reads the headers only
        n = sum(dict((k, s) for k, s, _ in whosmat(f))["y"][0] for f in files if f.exists())
        return dict(found=True, path=root / "svhn", n_images=n, source="svhn-mat")


class GTSRB(ImageDataset):
    """GTSRB (Stallkamp et al. 2012; ART A.3.3), official layout with ``;``-separated CSV annotations.

    Train: ``GTSRB/Final_Training/Images/000NN/GT-000NN.csv``; test: ``GTSRB/Final_Test/Images/*.ppm`` with labels from
    ``GT-final_test.csv`` (from ``GTSRB_Final_Test_GT.zip``; looked up in ``Final_Test/`` and ``Final_Test/Images/``).
    Labels come from the ``ClassId`` column. Images are resized to 32x32 by the default transform.
    """

    name = "gtsrb"

    @staticmethod
    def base(root: Path) -> Path:
        return next((p for p in (root / "gtsrb" / "GTSRB", root / "GTSRB") if p.is_dir()), root / "gtsrb" / "GTSRB")

    def __init__(self, root, split, transform=None):
        super().__init__(root, split, transform)
        base = self.base(self.root)
        self.paths = []
        if split == "train":
            images = base / "Final_Training" / "Images"
            if not images.is_dir():
                raise self._missing([(images, "GTSRB_Final_Training_Images.zip, extracted")])
            for d in sorted(p for p in images.iterdir() if p.is_dir()):
                self._read_csv(d / f"GT-{d.name}.csv", d)
            self.path = images
        else:
            images = base / "Final_Test" / "Images"
            csvs = [base / "Final_Test" / "GT-final_test.csv", images / "GT-final_test.csv"]
            gt = next((c for c in csvs if c.exists()), None)
            if gt is None:
                raise self._missing([(images, "GTSRB_Final_Test_Images.zip, extracted")] +
                                    [(c, "GTSRB_Final_Test_GT.zip: test labels") for c in csvs])
            self._read_csv(gt, images)
            self.path = images
        self.source = "gtsrb-official"

    def _read_csv(self, path: Path, folder: Path):
        if not path.exists():
            raise self._missing([(path, "GTSRB per-class annotation CSV")])
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh, delimiter=";"):
                self.paths.append(folder / row["Filename"])
                self.targets.append(int(row["ClassId"]))

    def load_image(self, i):
        return _open_rgb(self.paths[i])

    @classmethod
    def status(cls, root):
        base = cls.base(root)
        if not base.is_dir():
            return dict(found=False, path=base)
        n = _count_files(base / "Final_Training" / "Images", ".ppm") + _count_files(base / "Final_Test" / "Images",
                                                                                    ".ppm")
        return dict(found=True, path=base, n_images=n, source="gtsrb-official")


class Flowers17(ImageDataset):
    """Oxford Flowers-17 (Nilsback & Zisserman 2006; ART A.3.4): ``flowers17/jpg/image_NNNN.jpg``, class = (N-1)//80.

    Splits: with ``protocol="paper"`` (the default) the split of ART A.3.4 / RAR ``Flower/generate_data.py``: each
    class's images shuffled with ``seed`` and the first 72/80 of them (``round(0.9 n)``) train, the rest test (1,224 /
    136 on the full set); there is no ``val`` split under this protocol. With ``"official"`` the official
    ``trn{fold}`` / ``val{fold}`` / ``tst{fold}`` lists of ``flowers17/datasplits.mat`` (1-based image ids, 40/20/20 per
    class: 680 / 340 / 340); ``"auto"`` takes them when that file exists, else the paper's split. (The default was
    ``"auto"``: a data root set up by ``data download flowers17``, which fetches ``datasplits.mat``, silently
    switched every paper-profile Flowers-17 row to the official 680 / 340 split.) Images are resized to 128x128 by the
    default transform (A.3.4).
    """

    name, classes = "flowers17", FLOWERS17_CLASSES

    def __init__(self, root, split, transform=None, protocol: str = "paper", fold: int = 1, seed: int = 0):
        super().__init__(root, split, transform)
        base = self.root / "flowers17"
        jpg, splits_mat = base / "jpg", base / "datasplits.mat"
        if not jpg.is_dir():
            raise self._missing([(jpg, "17flowers.tgz, extracted")])
        ids = sorted(int(n[6:10]) for n in os.listdir(jpg) if re.fullmatch(r"image_\d{4}\.jpg", n))
        if protocol not in ("auto", "official", "paper"):
            raise ValueError(f"unknown flowers17 protocol {protocol!r}; choices: auto, official, paper")
        if protocol == "official" or (protocol == "auto" and splits_mat.exists()):
            if not splits_mat.exists():
                raise self._missing([(splits_mat, "official datasplits.mat")])
            from scipy.io import loadmat
            key = {"train": "trn", "val": "val", "test": "tst"}[split] + str(fold)
            chosen = sorted(int(v) for v in loadmat(splits_mat)[key].ravel())
            absent = sorted(set(chosen) - set(ids))
            if absent:
                raise self._missing([(jpg / f"image_{i:04d}.jpg", f"listed in datasplits.mat {key}")
                                     for i in absent[:3]])
            self.protocol = f"official datasplits.mat fold {fold}"
        else:
            if split == "val":
                raise ValueError(f"flowers17 split 'val' needs the official datasplits.mat ({splits_mat}); the paper "
                                 f"protocol has only 'train' and 'test'")
            chosen = []
            for c in range(17):
                members = [i for i in ids if (i - 1) // 80 == c]
                perm = np.random.default_rng([seed, c]).permutation(len(members))
                n_train = int(round(0.9 * len(members)))
                keep = perm[:n_train] if split == "train" else perm[n_train:]
                chosen += sorted(members[k] for k in keep)
            self.protocol = f"paper split (72/8 per class, seed {seed})"
        self.paths = [jpg / f"image_{i:04d}.jpg" for i in chosen]
        self.targets = [(i - 1) // 80 for i in chosen]
        self.source, self.path = "flowers17-jpg", jpg

    def load_image(self, i):
        return _open_rgb(self.paths[i])

    @staticmethod
    def status(root):
        jpg = root / "flowers17" / "jpg"
        if not jpg.is_dir():
            return dict(found=False, path=jpg)
        return dict(found=True, path=jpg, n_images=_count_files(jpg, ".jpg"), source="flowers17-jpg")


class CUB200(ImageDataset):
    """CUB-200-2011 (Wah et al. 2011; ART Sec. 4.2, B.1) with bounding boxes: items ``(image, label, box)``.

    Reads ``images.txt``, ``image_class_labels.txt`` (1-based, label - 1 returned), ``train_test_split.txt`` and
    ``bounding_boxes.txt`` (``x y width height`` in original pixels). ``transform`` is called as ``transform(image,
    boxes)`` with a ``torchvision.tv_tensors.BoundingBoxes`` (XYXY, continuous ``[x, x + width]``) and must return
    both, as ``torchvision.transforms.v2`` transforms do; the default is ``box_transform()`` (Resize((256, 256)) +
    CenterCrop(224), the ART WSOL test transform). The returned box is float32 ``(x0, y0, x1, y1)`` inclusive pixel
    corners of the transformed image, clipped to it: ``floor(x0), floor(y0), ceil(x1) - 1, ceil(y1) - 1``.
    """

    name = "cub200"

    def __init__(self, root, split, transform=None):
        super().__init__(root, split, transform)
        base = self.root / "CUB_200_2011"
        files = {k: base / f"{k}.txt" for k in ("images", "image_class_labels", "train_test_split", "bounding_boxes")}
        if not all(f.exists() for f in files.values()):
            raise self._missing([(f, "CUB_200_2011.tgz, extracted") for f in files.values() if not f.exists()])
        rows = {k: dict(line.split(maxsplit=1) for line in f.read_text().splitlines() if line.strip())
                for k, f in files.items()}
        ids = [i for i in rows["images"] if int(rows["train_test_split"][i]) == (split == "train")]
        ids.sort(key=int)
        self.ids = [int(i) for i in ids]
        self.paths = [base / "images" / rows["images"][i].strip() for i in ids]
        self.targets = [int(rows["image_class_labels"][i]) - 1 for i in ids]
        self.boxes = torch.tensor([[float(v) for v in rows["bounding_boxes"][i].split()] for i in ids],
                                  dtype=torch.float32).reshape(-1, 4)  # x, y, w, h
        self.source, self.path = "CUB_200_2011", base

    def load_image(self, i):
        return _open_rgb(self.paths[i])

    def __getitem__(self, i):
        from torchvision import tv_tensors
        i = self._index(i)
        img = self.load_image(i)
        x, y, w, h = self.boxes[i].tolist()
        box = tv_tensors.BoundingBoxes([[x, y, x + w, y + h]], format="XYXY", canvas_size=(img.height, img.width))
        img, box = self.transform(img, box)
        return img, self.targets[i], _inclusive_box(box.reshape(4), img.shape[-2:])

    @staticmethod
    def status(root):
        images = root / "CUB_200_2011" / "images.txt"
        if not images.exists():
            return dict(found=False, path=images.parent)
        n = sum(1 for line in images.read_text().splitlines() if line.strip())
        return dict(found=True, path=images.parent, n_images=n, source="CUB_200_2011")


def _inclusive_box(box: torch.Tensor, hw) -> torch.Tensor:
    """Continuous XYXY -> inclusive integer pixel corners, clipped to an image of size ``hw``."""
    x0, y0, x1, y1 = box.tolist()
    h, w = int(hw[0]), int(hw[1])
    eps = 1e-4  # float noise from resizing must not add a pixel
    out = [math.floor(x0 + eps), math.floor(y0 + eps), math.ceil(x1 - eps) - 1, math.ceil(y1 - eps) - 1]
    lim = [w - 1, h - 1, w - 1, h - 1]
    return torch.tensor([min(max(v, 0), m) for v, m in zip(out, lim)], dtype=torch.float32)


def box_transform(size: int = 224, resize: int = 256, train: bool = False):
    """Box-aware CUB transform: ``Resize((resize, resize))``, then ``CenterCrop(size)`` (``RandomCrop(size)`` and a
    horizontal flip when ``train``), then float in [0, 1]; the box follows the image (torchvision.transforms.v2).

    This is the ART WSOL transform (official code ``WSOL_CUB``); call it as ``img, box = t(pil_image, boxes)``.
    """
    from torchvision.transforms import v2
    crop = [v2.RandomCrop(size), v2.RandomHorizontalFlip()] if train else [v2.CenterCrop(size)]
    return v2.Compose([v2.ToImage(), v2.Resize((resize, resize)), *crop, v2.ToDtype(torch.float32, scale=True)])


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 ILSVRC-2012 wnids, sorted: the position of a wnid is its standard class index."""
    return tuple((Path(__file__).with_name("imagenet_wnids.txt")).read_text().split())


class ImageNet(ImageDataset):
    """ILSVRC-2012 (Inequality paper Sec. 4): ``imagenet/{train,val}/<wnid>/*`` folders, else flat samples.

    Class index = position of the wnid among the 1,000 sorted wnids (``imagenet_wnids()``), also when a folder holds
    only some classes. Fallbacks for ``val``: ``imagenet-samples/<wnid>_<name>.JPEG`` and ``foolbox-samples/
    imagenet_II_L.jpg`` (label in the name). Default transform: Resize(256) + CenterCrop(224).
    """

    name = "imagenet"

    def __init__(self, root, split, transform=None):
        super().__init__(root, split, transform)
        folder, flat, fool = self.root / "imagenet" / split, self.root / "imagenet-samples", \
            self.root / "foolbox-samples"
        wnids = imagenet_wnids()
        if folder.is_dir():
            self.paths, self.targets = _class_folders(folder, wnids)
            self.source, self.path = "imagenet-folder", folder
        elif split == "val" and flat.is_dir():
            index = {w: i for i, w in enumerate(wnids)}
            names = _list_images(flat)
            bad = [n for n in names if n.split("_")[0] not in index]
            if bad:
                raise ValueError(f"{flat}: file names must start with a wnid, got {bad[:3]}")
            self.paths = [flat / n for n in names]
            self.targets = [index[n.split("_")[0]] for n in names]
            self.source, self.path = "imagenet-samples", flat
        elif split == "val" and _foolbox_files(fool, "imagenet"):
            self.paths, self.targets = map(list, zip(*_foolbox_files(fool, "imagenet")))
            self.source, self.path = "foolbox-samples", fool
        else:
            raise self._missing(
                [(folder, "ImageFolder of wnid folders"), (flat, "flat <wnid>_<name>.JPEG samples, val only"),
                 (fool, "foolbox imagenet_*.jpg, val only")],
                hint=f"ImageNet needs a manual download (image-net.org, after accepting its terms): put the wnid "
                     f"folders in {self.root / 'imagenet' / split}. For 20 real val images run `python -m artlib "
                     f"data fetch-samples --root {self.root}`.")

    def load_image(self, i):
        return _open_rgb(self.paths[i])

    @staticmethod
    def status(root):
        folder, flat, fool = root / "imagenet", root / "imagenet-samples", root / "foolbox-samples"
        if folder.is_dir():
            n = sum(_count_files(folder / s) for s in ("train", "val") if (folder / s).is_dir())
            return dict(found=True, path=folder, n_images=n, source="imagenet-folder")
        if flat.is_dir():
            return dict(found=True, path=flat, n_images=_count_files(flat), source="imagenet-samples")
        if _foolbox_files(fool, "imagenet"):
            return dict(found=True, path=fool, n_images=len(_foolbox_files(fool, "imagenet")), source="foolbox-samples")
        return dict(found=False, path=folder)


class CIFAR10C(ImageDataset):
    """CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): 15 corruptions x 5 severities of the CIFAR-10 test set.

    Reads ``CIFAR-10-C/<corruption>.npy`` (``[5 * 10000, 32, 32, 3]`` uint8, severity-major) and ``labels.npy``
    memory-mapped. When those are absent (``regenerate=None``) or ``regenerate=True``, images are built lazily, one
    per ``__getitem__``, from this root's CIFAR-10 test set with the CIFAR-10-C severity constants of hendrycks/
    robustness ``ImageNet-C/create_c/make_cifar_c.py`` (see ``corrupt``); ``source`` then starts with "regenerated".

    Items are ordered corruption-major, then severity, then test image: ``i = (c * S + s) * N + j``; ``item_info(i)``
    decodes it. ``corruption`` / ``severity`` (a name / int or sequences) select blocks; ``seed`` fixes the noise.
    """

    name = "cifar10c"

    def __init__(self, root, split="test", transform=None, corruption: str | Sequence[str] | None = None,
                 severity: int | Sequence[int] | None = None, seed: int = 0, regenerate: bool | None = None):
        super().__init__(root, split, transform)
        names = list(CORRUPTIONS) if corruption is None else [corruption] if isinstance(corruption, str) \
            else list(corruption)
        sevs = [1, 2, 3, 4, 5] if severity is None else list(severity) if isinstance(severity, (list, tuple, range)) \
            else [severity]
        allowed = CORRUPTIONS + (_EXTRA_CORRUPTIONS if regenerate is not True else ())
        for c in names:
            if c not in allowed:
                raise ValueError(f"unknown CIFAR-10-C corruption {c!r}; choices: {', '.join(allowed)}")
        for s in sevs:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= s <= 5:
                raise ValueError(f"CIFAR-10-C severity must be an int in 1..5, got {s!r}")
        self.corruptions, self.severities, self.seed = names, [int(s) for s in sevs], seed
        folder = self.root / "CIFAR-10-C"
        files = [folder / "labels.npy"] + [folder / f"{c}.npy" for c in names]
        have = all(f.exists() for f in files)
        if regenerate is False and not have:
            raise self._missing([(f, "CIFAR-10-C.tar, extracted") for f in files if not f.exists()])
        if have and not regenerate:
            labels = np.load(folder / "labels.npy", mmap_mode="r")
            self.n = len(labels) // 5
            self.arrays = {c: np.load(folder / f"{c}.npy", mmap_mode="r") for c in names}
            block_labels = [np.asarray(labels[(s - 1) * self.n: s * self.n]) for s in sevs]
            self.clean, self.source, self.path = None, "CIFAR-10-C", folder
        else:
            if any(c in _EXTRA_CORRUPTIONS for c in names):
                raise self._missing([(folder / f"{c}.npy", "only read, not regenerated") for c in names
                                     if c in _EXTRA_CORRUPTIONS])
            try:
                self.clean = CIFAR10(self.root, "test", transform=_identity)
            except DatasetNotFoundError as exc:
                raise self._missing([(f, "CIFAR-10-C.tar, extracted") for f in files] +
                                    [(p, "CIFAR-10 test set to regenerate from") for p in exc.looked_at]) from None
            self.n, self.arrays = len(self.clean), None
            block_labels = [np.asarray(self.clean.targets)] * len(sevs)
            self.source, self.path = f"regenerated from {self.clean.source}", self.clean.path
        self.targets = np.concatenate(block_labels * len(names)).astype(np.int64).tolist()

    def item_info(self, i: int) -> dict:
        """``{"corruption", "severity", "index"}`` of item ``i`` (``index`` = position in the CIFAR-10 test set)."""
        block, j = divmod(self._index(i), self.n)
        c, s = divmod(block, len(self.severities))
        return dict(corruption=self.corruptions[c], severity=self.severities[s], index=j)

    def load_image(self, i):
        info = self.item_info(i)
        c, s, j = info["corruption"], info["severity"], info["index"]
        if self.arrays is not None:
            return Image.fromarray(np.asarray(self.arrays[c][(s - 1) * self.n + j]))
        clean = np.asarray(self.clean.load_image(j))
        rng = np.random.default_rng([self.seed, CORRUPTIONS.index(c), s, j])
        return Image.fromarray(corrupt(clean, c, s, rng))

    @staticmethod
    def status(root):
        folder = root / "CIFAR-10-C"
        if (folder / "labels.npy").exists():
            n = sum(np.load(folder / f"{c}.npy", mmap_mode="r").shape[0] for c in CORRUPTIONS + _EXTRA_CORRUPTIONS
                    if (folder / f"{c}.npy").exists())
            return dict(found=True, path=folder, n_images=n, source="CIFAR-10-C")
        clean = CIFAR10.status(root)
        if clean["found"]:
            n = {"cifar-10-batches-py": 10000, "cifar10-jpeg": _count_files(root / "cifar10-jpeg" / "test")}.get(
                clean["source"], clean["n_images"])
            return dict(found=True, path=clean["path"], n_images=n * 75, source=f"regenerated from {clean['source']}")
        return dict(found=False, path=folder)


def _identity(x):
    return x


def _count_files(folder: Path, ext: str | tuple = _IMAGE_EXTS) -> int:
    """Number of image files under ``folder`` (recursive, names only: nothing is decoded)."""
    if not folder.is_dir():
        return 0
    n = 0
    for e in os.scandir(folder):
        if e.is_dir():
            n += _count_files(Path(e.path), ext)
        elif e.name.lower().endswith(ext):
            n += 1
    return n




# ------------------------------------------------------------------------------------ ART A.3 class balancing
class ClassBalanced(Dataset):
    """Lazily class-balanced training set with rotation, translation and projective augmentation (ART A.3.3/A.3.4).

    ART appendix A.3.3 (GTSRB): "To balance the number of images for each class, we use data augmentation techniques
    consisting of rotation, translation, and projection transforms to extend the training set to 10,000 images per
    class as in [13]"; A.3.4 (Flowers): "... to extend the training data so that each class contains 1,000 training
    examples". [13] is RAR, whose ``generate_data.py`` keeps every original image once and fills class ``c`` with
    augmented copies of its ``k mod n_c``-th image: rotation U(-15, 15) degrees, translation U(-2.5, 2.5) pixels per
    axis, and a projective warp moving each corner by U(-d, d) with d = 0.3 H U(0, 0.8); borders repeat edge pixels.

    Nothing is materialised: item ``i`` is class ``i // per_class``, slot ``k = i % per_class``; slots ``k < n_c``
    return the original images (the first ``per_class`` when a class has more), later slots an augmentation whose
    parameters come from a generator seeded with ``(seed, i)``, so an item is the same on every call and in every
    worker. Augmentation works on the base dataset's ``[C, H, W]`` tensors (run after its transform).

    Args:
        dataset: a Dataset of ``(image tensor, label)`` with ``targets`` (e.g. ``load_dataset("gtsrb", "train")``).
        per_class: images per class (10,000 for GTSRB, 1,000 for Flowers-17 in the paper).
        seed: seed of the augmentation parameters.
    Example::

        >>> train = ClassBalanced(load_dataset("gtsrb", "train"), per_class=10_000)
        >>> len(train)   # 43 classes
        430000
    """

    def __init__(self, dataset, per_class: int, seed: int = 0):
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ValueError(f"per_class must be a positive int, got {per_class!r}")
        targets = np.asarray(dataset.targets, dtype=np.int64)
        self.dataset, self.per_class, self.seed = dataset, per_class, seed
        self.classes = np.unique(targets).tolist()
        self.by_class = [np.flatnonzero(targets == c) for c in self.classes]
        self.targets = np.repeat(np.asarray(self.classes, dtype=np.int64), per_class)

    def __len__(self):
        return len(self.classes) * self.per_class

    def __getattr__(self, attr):  # source, name, split, info, ... of the base dataset
        if attr == "dataset":
            raise AttributeError(attr)
        return getattr(self.dataset, attr)

    def source_index(self, i: int) -> tuple[int, bool]:
        """``(index in the base dataset, augmented?)`` of item ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        pos, k = divmod(int(i), self.per_class)
        members = self.by_class[pos]
        return int(members[k % len(members)]), k >= len(members)

    def __getitem__(self, i):
        src, augmented = self.source_index(i)
        x, y = self.dataset[src][:2]
        if augmented:
            seed = int(np.random.SeedSequence([self.seed, int(i)]).generate_state(1)[0])
            x = rar_augment(x, torch.Generator().manual_seed(seed))
        return x, y


def rar_augment(x: torch.Tensor, generator: torch.Generator, max_angle: float = 15.0, max_translate: float = 5.0,
                max_warp: float = 0.8) -> torch.Tensor:
    """RAR ``transform_image`` on one ``[C, H, W]`` image: rotation U(-max_angle, max_angle) degrees about the centre,
    translation U(-max_translate / 2, max_translate / 2) pixels per axis, then a projective warp moving each corner
    by U(-d, d), d = 0.3 H U(0, max_warp); parameters drawn from ``generator``.

    The three maps are composed into one homography and sampled once (bilinear, edge pixels repeated, like the
    skimage ``mode='edge'`` of RAR; RAR interpolates three times and pads the translation with black). Returns the
    same shape and dtype.
    """
    from scipy.ndimage import map_coordinates
    h, w = x.shape[-2:]
    u = torch.rand(12, generator=generator, dtype=torch.float64).tolist()
    angle = math.radians((2 * u[0] - 1) * max_angle)
    tx, ty = max_translate * u[1] - max_translate / 2, max_translate * u[2] - max_translate / 2
    d = h * 0.3 * max_warp * u[3]
    tl_top, tl_left, bl_bottom, bl_left, tr_top, tr_right, br_bottom, br_right = [(2 * v - 1) * d for v in u[4:]]
    cos, sin, cx, cy = math.cos(angle), math.sin(angle), (w - 1) / 2, (h - 1) / 2
    rotate_translate = np.array([[cos, sin, cx - cos * cx - sin * cy + tx],
                                 [-sin, cos, cy + sin * cx - cos * cy + ty], [0, 0, 1]])
    corners = [(0, 0), (0, h), (w, h), (w, 0)]
    moved = [(tl_left, tl_top), (bl_left, h - bl_bottom), (w - br_right, h - br_bottom), (w - tr_right, tr_top)]
    to_input = np.linalg.inv(rotate_translate) @ _homography(moved, corners)  # output pixel -> input pixel
    ys, xs = np.mgrid[0:h, 0:w]
    pts = to_input @ np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)])
    coords = [pts[1] / pts[2], pts[0] / pts[2]]
    img = x.detach().cpu().numpy().astype(np.float64)  # numpy throughout: no torch intra-op threads per item
    out = np.stack([map_coordinates(ch, coords, order=1, mode="nearest").reshape(h, w) for ch in img])
    return torch.from_numpy(np.clip(out, 0, 1).astype(np.float32)).to(x.dtype)


def _homography(src, dst) -> np.ndarray:
    """3x3 projective map taking the four (x, y) points ``src`` to ``dst``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, dtype=np.float64), np.array(rhs, dtype=np.float64))
    return np.append(h, 1).reshape(3, 3)


def balance_classes(dataset, per_class: int | None = None, seed: int = 0) -> ClassBalanced:
    """``ClassBalanced(dataset, per_class, seed)``; ``per_class`` defaults to the paper's value for the dataset
    (``DATASETS[name].balance_to``: GTSRB 10,000, Flowers-17 1,000)."""
    if per_class is None:
        info = DATASETS.get(getattr(dataset, "name", ""))
        if info is None or info.balance_to is None:
            raise ValueError("per_class is needed: the paper balances only gtsrb (10,000) and flowers17 (1,000)")
        per_class = info.balance_to
    return ClassBalanced(dataset, per_class, seed)


# ------------------------------------------------------------------------------------------------------ subsets
class SubsetDataset(Dataset):
    """A view of ``dataset`` at ``indices``, with ``targets`` and the base dataset's attributes (``source`` ...)."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, [int(i) for i in indices]
        base = np.asarray(dataset.targets)
        self.targets = base[self.indices].tolist() if len(self.indices) else []

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]

    def __getattr__(self, attr):  # source, name, split, info, ... of the base dataset
        if attr == "dataset":
            raise AttributeError(attr)
        return getattr(self.dataset, attr)

    def __repr__(self):
        return f"SubsetDataset(n={len(self)}, of={self.dataset!r})"


def class_rank(targets) -> np.ndarray:
    """Each item's position among the items of its class, in dataset order: ``[0, 0, 1, 2, 1]`` for labels
    ``[3, 5, 3, 3, 5]``."""
    targets = np.asarray(targets)
    order = np.argsort(targets, kind="stable")
    rank = np.empty(len(targets), dtype=np.int64)
    rank[order] = np.arange(len(targets)) - np.searchsorted(targets[order], targets[order], side="left")
    return rank


def subset_dataset(dataset, subset: int | Sequence[int]) -> SubsetDataset:
    """Deterministic subset. An int ``n`` picks a stratified subset without any randomness: classes take turns in
    label order, each giving its next image in dataset order (the first image of every class, then every class's
    second, ...), and the ``n`` picked items keep their dataset order. A sequence gives the indices themselves."""
    n_total = len(dataset)
    if isinstance(subset, bool) or not isinstance(subset, (int, np.integer, Sequence, np.ndarray, torch.Tensor)) \
            or isinstance(subset, str):
        raise ValueError(f"subset must be an int or a sequence of indices, got {subset!r}")
    if isinstance(subset, (int, np.integer)):
        if not 0 < subset <= n_total:
            raise ValueError(f"subset={subset} must be between 1 and the {n_total} items of the dataset")
        targets = np.asarray(dataset.targets)
        rank = class_rank(targets)
        return SubsetDataset(dataset, np.sort(np.lexsort((targets, rank))[:subset]))
    indices = [int(i) for i in (subset.tolist() if hasattr(subset, "tolist") else subset)]
    bad = [i for i in indices if not 0 <= i < n_total]
    if bad:
        raise ValueError(f"subset indices {bad[:5]} out of range for a dataset of {n_total} items")
    return SubsetDataset(dataset, indices)


# ------------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class DatasetInfo:
    """Registry entry: classes, default image side, normalisation (used by the models' Normalize layer), splits."""

    name: str
    loader: type
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    splits: tuple[str, ...]
    about: str
    balance_to: int | None = None
    channels: int = 3


_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # as in the ART authors' CIFAR code
DATASETS: dict[str, DatasetInfo] = {i.name: i for i in [
    DatasetInfo("cifar10", CIFAR10, 10, 32, _CIFAR_MEAN, _CIFAR_STD, ("train", "test"), "ART Table 1, Inequality"),
    DatasetInfo("svhn", SVHN, 10, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), ("train", "test", "extra"),
                "ART Table 1 (A.3.1)"),
    DatasetInfo("gtsrb", GTSRB, 43, 32, (0.3403, 0.3121, 0.3214), (0.2724, 0.2608, 0.2669), ("train", "test"),
                "ART Table 1 (A.3.3)", balance_to=10_000),
    DatasetInfo("flowers17", Flowers17, 17, 128, _IMAGENET_MEAN, _IMAGENET_STD, ("train", "val", "test"),
                "ART Table 1 (A.3.4); ImageNet statistics (no published per-dataset values)", balance_to=1_000),
    DatasetInfo("cub200", CUB200, 200, 224, _IMAGENET_MEAN, _IMAGENET_STD, ("train", "test"),
                "ART Table 2 WSOL (Sec. 4.2, B.1)"),
    DatasetInfo("cifar10c", CIFAR10C, 10, 32, _CIFAR_MEAN, _CIFAR_STD, ("test",), "Inequality (corruption robustness)"),
    DatasetInfo("imagenet", ImageNet, 1000, 224, _IMAGENET_MEAN, _IMAGENET_STD, ("train", "val"),
                "Inequality Sec. 4 (robust ImageNet models)"),
]}


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choices: {', '.join(DATASETS)}")
    return DATASETS[name]


def default_transform(name: str):
    """The default PIL -> float tensor transform of a dataset (sizes in the module docstring)."""
    from torchvision.transforms import v2
    if name == "cub200":
        return box_transform()
    resize = {"gtsrb": [v2.Resize((32, 32))], "flowers17": [v2.Resize((128, 128))],
              "imagenet": [v2.Resize(256), v2.CenterCrop(224)]}.get(name, [])
    return v2.Compose([v2.ToImage(), *resize, v2.ToDtype(torch.float32, scale=True)])


def load_dataset(name: str, split: str, root: str | os.PathLike | None = None,
                 subset: int | Sequence[int] | None = None, download: bool = False, transform: Callable | None = None,
                 balance: bool | int = False, **options) -> Dataset:
    """Load one split of a dataset from its official on-disk format.

    Args:
        name: one of ``DATASETS``: cifar10, svhn, gtsrb, flowers17, cub200, cifar10c, imagenet.
        split: one of ``DATASETS[name].splits``.
        root: data root; default ``$ARTLIB_DATA``, else ``./data``.
        subset: None (all), an int ``n`` (deterministic class-stratified pick, see ``subset_dataset``) or indices.
        download: fetch the dataset with ``download(name, root)`` when it is missing.
        transform: replaces ``default_transform(name)``; receives a PIL RGB image (CUB: ``(image, boxes)``).
        balance: ART A.3 class balancing of the (subset) split: True = the paper's images per class
            (gtsrb 10,000, flowers17 1,000), an int = that many (see ``ClassBalanced``).
        **options: loader options: flowers17 ``protocol``, ``fold``, ``seed``; cifar10c ``corruption``,
            ``severity``, ``seed``, ``regenerate``.
    Returns:
        A Dataset of ``(image [C, H, W] float in [0, 1], label)`` (cub200: ``(image, label, box[4])``) with
        ``targets`` and ``source`` attributes.
    Raises:
        ValueError: unknown name, split, option or bad subset. DatasetNotFoundError: data missing (lists the paths
        looked at and the download command). CorruptDataError (a ValueError): a file of the dataset is empty,
        truncated, an HTML page or of the wrong format, or a CIFAR batch holds objects other than the batch's data
        (named; nothing in it is executed); images raise it when they are decoded (``ds[i]``).
    Example::

        >>> ds = load_dataset("cifar10c", "test", corruption="fog", severity=3, subset=50)
        >>> x, y = ds[0]
    """
    info = _info(name)
    if split not in info.splits:
        raise ValueError(f"unknown split {split!r} for {name}; choices: {', '.join(info.splits)}")
    allowed = set(inspect.signature(info.loader.__init__).parameters) - {"self", "root", "split", "transform"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {name}; choices: {sorted(allowed) or 'none'}")
    root = resolve_root(root)
    try:
        ds = info.loader(root, split, transform=transform, **options)
    except DatasetNotFoundError:
        if not download:
            raise
        globals()["download"](name, root)  # the module function, shadowed here by the ``download`` flag
        ds = info.loader(root, split, transform=transform, **options)
    ds = dryrun.dataset(ds)
    if subset is not None:
        ds = subset_dataset(ds, subset)
    if balance is not False and balance is not None:
        ds = balance_classes(ds, None if balance is True else balance)
    return ds


def dataset_status(root: str | os.PathLike | None = None) -> list[dict]:
    """For ``python -m artlib data list``: one dict per dataset with ``name``, ``found``, ``path``, ``n_images``
    (files counted, nothing decoded) and ``source`` (the on-disk format found, or None)."""
    root = resolve_root(root)
    rows = []
    for name, info in DATASETS.items():
        row = dict(name=name, found=False, path=None, n_images=0, source=None)
        row.update(info.loader.status(root))
        row["path"] = str(row["path"])
        rows.append(row)
    return rows


_SOURCE_CACHE: dict = {}


def data_source(name: str, root: str | os.PathLike | None = None) -> dict:
    """Where ``name`` is read from under the data root, without decoding anything: ``{"dataset", "root", "found",
    "source", "path", "n_images"}`` (the row of :func:`dataset_status`, ``root`` resolved). :mod:`artlib.train`
    records it beside every checkpoint and refuses to resume or load a run folder trained on another source.
    Cached per process for an unchanged dataset folder (its modification time), since counting files takes a while
    on large folders."""
    info = _info(name)
    root = resolve_root(root)
    first = _SOURCE_CACHE.get((name, str(root)))
    if first is not None:
        path, mtime, row = first
        try:
            if os.stat(path).st_mtime_ns == mtime:
                return dict(row)
        except OSError:
            pass
    status = info.loader.status(root)
    row = {"dataset": name, "root": str(root), "found": bool(status.get("found")), "source": status.get("source"),
           "path": str(status.get("path")), "n_images": status.get("n_images")}
    try:
        _SOURCE_CACHE[(name, str(root))] = (row["path"], os.stat(row["path"]).st_mtime_ns, row)
    except OSError:
        pass
    return dict(row)


def compute_mean_std(dataset, batch_size: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a dataset's images (to replace the registry's values for a new split/root)."""
    from tqdm.auto import tqdm
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    s = s2 = n = 0
    for batch in tqdm(loader, desc="mean/std", leave=False):
        x = batch[0].double()
        s, s2, n = s + x.sum((0, 2, 3)), s2 + (x ** 2).sum((0, 2, 3)), n + x.numel() // x.shape[1]
    mean = s / n
    return tuple(mean.tolist()), tuple((s2 / n - mean ** 2).clamp_min(0).sqrt().tolist())


# ----------------------------------------------------------------------------------------------------- downloads
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
_GTSRB_URL = "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/"
_FLOWERS_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/"
#: Official sources: ``name -> [(url, md5 or None where the source publishes none, folder under the root)]``. Files
#: ending in :data:`artlib.fetch.ARCHIVE_SUFFIXES` are extracted into the folder, others saved there as they are.
#: md5s: torchvision's (CIFAR-10, SVHN), the hosts' published ones (GTSRB, CUB, Zenodo) and the Flowers-17 page's.
DOWNLOADS = {
    "cifar10": [(_CIFAR_URL, "c58f30108f718f92721af3b95e74349a", ".")],
    "svhn": [(_SVHN_URL + "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", "svhn"),
             (_SVHN_URL + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", "svhn")],
    "gtsrb": [(_GTSRB_URL + "GTSRB_Final_Training_Images.zip", "f33fd80ac59bff73c82d25ab499e03a3", "gtsrb"),
              (_GTSRB_URL + "GTSRB_Final_Test_Images.zip", "c7e4e6327067d32654124b0fe9e82185", "gtsrb"),
              (_GTSRB_URL + "GTSRB_Final_Test_GT.zip", "fe31e9c9270bbcd7b84b7f21a9d9d9e5", "gtsrb/GTSRB/Final_Test")],
    "flowers17": [(_FLOWERS_URL + "17flowers.tgz", "b59a65d8d1a99cd66944d474e1289eab", "flowers17"),
                  (_FLOWERS_URL + "datasplits.mat", "4828cddfd0d803c5abbdebcb1e148a1e", "flowers17")],
    # no published checksum: checked by its structure (imlist.mat and every listed trimap, wsol.Flowers17Trimaps)
    "flowers17-trimaps": [(_FLOWERS_URL + "trimaps.tgz", None, "flowers17")],
    "cub200": [("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
                "97eceeb196236b17998738112f37df78", ".")],
    "cifar10c": [("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1",
                  "56bf5dcef84df0e2308c6dcbcbbd8499", ".")],
}
#: What ImageNet needs from the user (its terms forbid redistribution): the exact steps.
IMAGENET_STEPS = ("ImageNet needs a manual download: accept the terms at https://image-net.org/download-images, get "
                  "ILSVRC2012_img_val.tar (and ILSVRC2012_img_train.tar to train), and put the images in wnid "
                  "folders under {root}/imagenet/{{val,train}}/<wnid>/*.JPEG (torchvision.datasets.ImageNet(root, "
                  "split='val') does the sorting with ILSVRC2012_devkit_t12.tar.gz); `python -m artlib data "
                  "fetch-samples` gets 20 real val images from PyPI meanwhile")


def available(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether the data root holds ``name`` (a :data:`DATASETS` name, or ``"flowers17-trimaps"``) in a usable form."""
    root = resolve_root(root)
    if name == "flowers17-trimaps":
        from artlib.wsol import Flowers17Trimaps
        try:
            Flowers17Trimaps(root)
        except (DatasetNotFoundError, ValueError):
            return False
        return True
    return bool(_info(name).loader.status(root).get("found"))


def download(name: str, root: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """Download ``name`` into ``root`` in its official format from :data:`DOWNLOADS`; returns the dataset's path.

    Every file goes through :func:`artlib.fetch.fetch` (resumable, md5-checked, HTML pages and truncated bodies
    refused, ``$ARTLIB_MIRROR`` honoured) into ``<root>/_downloads``; once all of the dataset's files are there and
    verified, archives are extracted (:func:`artlib.fetch.extract`) into a staging tree that is then moved into the
    root, so a failure at any step leaves nothing of the dataset in the root (verified files and a resumable
    ``.part`` stay in ``_downloads`` for the next run) and the downloaded files are removed after success. ``imagenet`` needs a manual download (RuntimeError with :data:`IMAGENET_STEPS`);
    ``"foolbox-samples"`` runs :func:`fetch_foolbox_samples`. Raises :class:`artlib.fetch.FetchError` (one line).
    """
    root = resolve_root(root)
    if name == "foolbox-samples":
        return fetch_foolbox_samples(root)
    if name not in DOWNLOADS and name != "imagenet":
        raise ValueError(f"unknown dataset {name!r}; choices: {', '.join([*DOWNLOADS, 'imagenet', 'foolbox-samples'])}")
    if name == "imagenet":
        raise RuntimeError(IMAGENET_STEPS.format(root=root))
    staging = root / "_downloads"
    tree = staging / f".{name}-tree"         # the dataset's files, moved into the root once all are there
    try:
        fetched = []
        for url, md5, into in DOWNLOADS[name]:  # a verified file already in staging (an earlier run) is kept
            fetched.append((fetch.fetch(url, staging / fetch.file_name(url), md5=md5, progress=progress), into))
        shutil.rmtree(tree, ignore_errors=True)
        for path, into in fetched:
            if path.name.endswith(fetch.ARCHIVE_SUFFIXES):
                fetch.extract(path, tree / into)
            else:
                (tree / into).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, tree / into / path.name)
        fetch.merge_into(tree, root)
        for path, _ in fetched:
            path.unlink()
    finally:  # an interrupted download's .part (and verified files) stay in staging for the next run
        shutil.rmtree(tree, ignore_errors=True)
        if staging.is_dir() and not any(staging.iterdir()):
            staging.rmdir()
    if name == "flowers17-trimaps":
        if not available(name, root):
            raise fetch.FetchError(f"flowers17-trimaps: trimaps.tgz extracted, but {root / 'flowers17/trimaps'} "
                                   f"does not hold imlist.mat and its listed trimaps (and jpg/ the images)")
        _SOURCE_CACHE.clear()
        return root / "flowers17" / "trimaps"
    _SOURCE_CACHE.clear()
    status = DATASETS[name].loader.status(root)
    if not status["found"]:
        raise fetch.FetchError(f"{name}: downloaded, but nothing found at {status['path']}")
    return Path(status["path"])


def ensure(names: Sequence[str], root: str | os.PathLike | None = None, *, progress: bool = True) -> list[dict]:
    """Make the data root hold ``names``: each one found is left alone, each missing one downloaded
    (:func:`download`). Never raises for a dataset it cannot get; returns one row per name,
    ``{"name", "state", "message"}`` with ``state`` one of

    * ``"found"`` / ``"downloaded"``;
    * ``"manual"`` — ImageNet (:data:`IMAGENET_STEPS`);
    * ``"offline"`` — the host is unreachable (:class:`artlib.fetch.Offline`): what is there is used;
    * ``"failed"`` — a verified download failed (HTML page, truncated body, checksum mismatch, bad archive).

    Example::

        >>> rows = data.ensure(["cifar10", "gtsrb"])             # doctest: +SKIP
        >>> [(r["name"], r["state"]) for r in rows]               # doctest: +SKIP
        [('cifar10', 'found'), ('gtsrb', 'downloaded')]
    """
    root = resolve_root(root)
    rows = []
    for name in names:
        if available(name, root):
            rows.append({"name": name, "state": "found", "message": ""})
            continue
        try:
            download(name, root, progress=progress)
            rows.append({"name": name, "state": "downloaded", "message": ""})
        except fetch.Offline as exc:
            rows.append({"name": name, "state": "offline", "message": str(exc)})
        except fetch.FetchError as exc:
            rows.append({"name": name, "state": "failed", "message": str(exc)})
        except RuntimeError as exc:  # imagenet
            rows.append({"name": name, "state": "manual", "message": str(exc)})
    return rows


def fetch_foolbox_samples(root: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Fetch the real test images shipped in the ``foolbox==3.3.4`` wheel (MIT) into ``<root>/foolbox-samples``.

    Runs ``pip download --no-deps foolbox==3.3.4`` into a temporary folder (PyPI only, nothing installed), checks the
    wheel's sha256 and extracts ``foolbox/data/{cifar10,imagenet,mnist}_II_L.{png,jpg}``: the first 20 CIFAR-10 and
    MNIST test images and 20 ImageNet val images, label in the name. Returns the folder; a no-op if already there.
    """
    dest = resolve_root(root) / "foolbox-samples"
    if not force and _foolbox_files(dest, "cifar10") and _foolbox_files(dest, "imagenet"):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", tmp,
               "foolbox==3.3.4"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{run.stdout[-1000:]}{run.stderr[-2000:]}")
        return extract_foolbox_samples(Path(tmp) / FOOLBOX_WHEEL, dest)


def extract_foolbox_samples(wheel: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = FOOLBOX_SHA256
                            ) -> Path:
    """Extract ``foolbox/data/{cifar10,imagenet,mnist}_*`` from a foolbox wheel into ``dest`` (sha256 checked)."""
    wheel, dest = Path(wheel), Path(dest)
    from artlib.checkpoints import html_message, looks_like_html
    if looks_like_html(wheel):
        raise RuntimeError(html_message(wheel, "the foolbox wheel (a zip archive)"))
    if sha256 is not None:
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != sha256:
            raise RuntimeError(f"{wheel.name}: sha256 {digest} differs from the expected {sha256}")
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            folder, _, fname = member.rpartition("/")
            if folder == "foolbox/data" and _FOOLBOX_RE.match(fname):  # cifar10, imagenet, mnist (not cifar100)
                tmp = dest / (fname + ".part")
                tmp.write_bytes(z.read(member))
                os.replace(tmp, dest / fname)
                n += 1
    if n == 0:
        raise RuntimeError(f"{wheel.name} holds no foolbox/data/cifar10_*.png: the wheel layout changed")
    return dest
