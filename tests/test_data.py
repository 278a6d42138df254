"""Tests of artlib.data: loaders on fixture trees in the official formats, on the real subsets in ../shared/data
(skipped without them, an error under ARTLIB_REQUIRE_DATA=1: the ``shared_data`` fixture of the root conftest.py),
bad inputs, ART A.3 class balancing and the regenerated CIFAR-10-C."""
from __future__ import annotations

import math
import os
import time
import zipfile

import numpy as np
import pytest
import torch

from artlib import data
from artlib.data import DatasetNotFoundError, load_dataset
from fixtures_data import (smooth_images, write_cifar10c, write_cifar_batches, write_cub, write_flowers,
                           write_foolbox_wheel, write_gtsrb, write_imagenet, write_svhn)


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------------------- fixture trees
def test_cifar_python_batches(tmp_path):
    expected = write_cifar_batches(tmp_path)
    for split, n in [("train", 20), ("test", 6)]:
        ds = load_dataset("cifar10", split, root=tmp_path)
        imgs, labels = expected[split]
        assert len(ds) == n and ds.source == "cifar-10-batches-py" and ds.targets == labels
        x, y = ds[n - 1]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == labels[-1]
        np.testing.assert_array_equal(as_uint8(x), imgs[-1])  # exact pixels, channel order kept


def test_cifar_batches_win_over_jpeg_and_missing_batch(tmp_path):
    write_cifar_batches(tmp_path)
    (tmp_path / "cifar10-jpeg" / "test" / "cat").mkdir(parents=True)
    assert load_dataset("cifar10", "test", root=tmp_path).source == "cifar-10-batches-py"
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_cifar_jpeg_folders_use_official_class_order(tmp_path):
    from PIL import Image
    for cls in ("truck", "airplane", "cat"):
        (tmp_path / "cifar10-jpeg" / "train" / cls).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(smooth_images(1)[0]).save(tmp_path / "cifar10-jpeg" / "train" / cls / f"{k:04d}.jpg")
    ds = load_dataset("cifar10", "train", root=tmp_path)
    assert ds.source == "cifar10-jpeg" and ds.targets == [0, 0, 3, 3, 9, 9]
    assert ds[5][0].shape == (3, 32, 32)
    (tmp_path / "cifar10-jpeg" / "train" / "kitten").mkdir()
    with pytest.raises(ValueError, match="kitten"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_svhn_mat_maps_10_to_digit_0(tmp_path):
    imgs, y = write_svhn(tmp_path)
    ds = load_dataset("svhn", "test", root=tmp_path)
    assert ds.targets == [0, 1, 2, 0, 9, 5, 3] and len(ds) == len(y)
    np.testing.assert_array_equal(as_uint8(ds[4][0]), imgs[4])
    with pytest.raises(DatasetNotFoundError, match="train_32x32.mat"):
        load_dataset("svhn", "train", root=tmp_path)


def test_gtsrb_official_csvs(tmp_path):
    expected = write_gtsrb(tmp_path)
    for split in ("train", "test"):
        ds = load_dataset("gtsrb", split, root=tmp_path)
        assert ds.targets == expected[split]
        assert all(ds[i][0].shape == (3, 32, 32) for i in range(len(ds)))  # varying sizes resized to 32x32
    (tmp_path / "gtsrb" / "GTSRB" / "Final_Test" / "GT-final_test.csv").unlink()
    with pytest.raises(DatasetNotFoundError, match="GT-final_test.csv"):
        load_dataset("gtsrb", "test", root=tmp_path)


def test_cifar10c_npy(tmp_path):
    fx = write_cifar10c(tmp_path)
    n = fx["n"]
    ds = load_dataset("cifar10c", "test", root=tmp_path, corruption=["gaussian_noise", "fog"])
    assert ds.source == "CIFAR-10-C" and len(ds) == 2 * 5 * n
    i = (1 * 5 + 2) * n + 1  # fog, severity 3, test image 1
    assert ds.item_info(i) == dict(corruption="fog", severity=3, index=1)
    x, y = ds[i]
    np.testing.assert_array_equal(as_uint8(x), fx["arrays"]["fog"][2 * n + 1])
    assert y == fx["labels"][2 * n + 1]
    one = load_dataset("cifar10c", "test", root=tmp_path, corruption="gaussian_noise", severity=2)
    assert len(one) == n
    np.testing.assert_array_equal(as_uint8(one[0][0]), fx["arrays"]["gaussian_noise"][n])
    with pytest.raises(DatasetNotFoundError, match="CIFAR-10 test set to regenerate from"):
        load_dataset("cifar10c", "test", root=tmp_path, corruption="snow")  # no snow.npy and no CIFAR-10


def test_flowers_official_datasplits(tmp_path):
    fx = write_flowers(tmp_path)
    for split, key, n in [("train", "trn1", 85), ("val", "val1", 51), ("test", "tst1", 34)]:
        ds = load_dataset("flowers17", split, root=tmp_path, protocol="official")
        assert len(ds) == n and ds.protocol.startswith("official")
        assert load_dataset("flowers17", split, root=tmp_path, protocol="auto").paths == ds.paths
        assert [int(p.stem[6:]) for p in ds.paths] == sorted(fx["splits"][key])
        assert ds.targets == [(i - 1) // 80 for i in sorted(fx["splits"][key])]
    assert ds[0][0].shape == (3, 128, 128)
    fold2 = load_dataset("flowers17", "train", root=tmp_path, protocol="official", fold=2)
    paper = load_dataset("flowers17", "train", root=tmp_path)      # the default: ART A.3.4's split, file or not
    assert len(paper) == 17 * 9 and "paper" in paper.protocol
    assert [int(p.stem[6:]) for p in fold2.paths] == sorted(fx["splits"]["trn2"])


def test_flowers_paper_split_is_seeded_72_8(tmp_path):
    write_flowers(tmp_path, splits=False)
    train, test = (load_dataset("flowers17", s, root=tmp_path) for s in ("train", "test"))
    assert len(train) == 17 * 9 and len(test) == 17 and "paper" in train.protocol
    assert set(train.paths).isdisjoint(test.paths) and len(set(train.paths) | set(test.paths)) == 170
    assert np.bincount(test.targets).tolist() == [1] * 17
    again = load_dataset("flowers17", "test", root=tmp_path)
    other = load_dataset("flowers17", "test", root=tmp_path, seed=1)
    assert again.paths == test.paths and other.paths != test.paths
    with pytest.raises(ValueError, match="datasplits.mat"):
        load_dataset("flowers17", "val", root=tmp_path)


def expected_box(box, size, resize=256, crop=224):
    """Independent mapping of a CUB (x, y, w, h) box through Resize((resize, resize)) + CenterCrop(crop)."""
    (w_img, h_img), (x, y, w, h) = size, box
    off = int(round((resize - crop) / 2))
    x0, x1 = x * resize / w_img - off, (x + w) * resize / w_img - off
    y0, y1 = y * resize / h_img - off, (y + h) * resize / h_img - off
    clip = lambda v: min(max(v, 0), crop - 1)  # noqa: E731
    return [clip(math.floor(x0)), clip(math.floor(y0)), clip(math.ceil(x1) - 1), clip(math.ceil(y1) - 1)]


def test_cub_items_and_boxes(tmp_path):
    items = write_cub(tmp_path)
    for split, flag in [("train", 1), ("test", 0)]:
        ds = load_dataset("cub200", split, root=tmp_path)
        chosen = [it for it in items if it["train"] == flag]
        assert ds.ids == [it["id"] for it in chosen] and ds.targets == [it["label"] - 1 for it in chosen]
        for k, it in enumerate(chosen):
            x, y, box = ds[k]
            assert x.shape == (3, 224, 224) and box.shape == (4,) and box.dtype == torch.float32
            assert box.tolist() == expected_box(it["box"], it["size"])
            assert 0 <= box[0] <= box[2] <= 223 and 0 <= box[1] <= box[3] <= 223
    assert load_dataset("cub200", "test", root=tmp_path)[0][2].tolist() == [0, 0, 223, 223]  # whole-image box
    small = load_dataset("cub200", "test", root=tmp_path, transform=data.box_transform(size=64, resize=80))
    x, _, box = small[1]
    assert x.shape == (3, 64, 64) and box.tolist() == expected_box(items[3]["box"], (256, 256), 80, 64)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 3, 224, 224) and batch[2].shape == (2, 4)


def test_imagenet_folder_and_flat_samples(tmp_path):
    fx = write_imagenet(tmp_path)
    ds = load_dataset("imagenet", "val", root=tmp_path)
    assert ds.source == "imagenet-folder" and ds.targets == fx["folder"]
    assert ds[0][0].shape == (3, 224, 224)
    import shutil
    shutil.rmtree(tmp_path / "imagenet")
    flat = load_dataset("imagenet", "val", root=tmp_path)
    assert flat.source == "imagenet-samples" and flat.targets == fx["flat"]
    with pytest.raises(DatasetNotFoundError, match="manual download"):
        load_dataset("imagenet", "train", root=tmp_path)
    (tmp_path / "imagenet-samples" / "tench.JPEG").write_bytes(b"")
    with pytest.raises(ValueError, match="wnid"):
        load_dataset("imagenet", "val", root=tmp_path)


def test_imagenet_wnids_are_the_sorted_1000():
    wnids = data.imagenet_wnids()
    assert len(wnids) == len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
    assert wnids[0] == "n01440764" and wnids[-1] == "n15075141"


def test_foolbox_wheel_extraction_and_fallback(tmp_path):
    wheel = tmp_path / "foolbox-3.3.4-py3-none-any.whl"
    names = write_foolbox_wheel(wheel)
    root = tmp_path / "root"
    dest = data.extract_foolbox_samples(wheel, root / "foolbox-samples", sha256=None)
    assert sorted(os.listdir(dest)) == sorted(names)  # cifar100 and code files are not extracted
    with pytest.raises(RuntimeError, match="sha256"):
        data.extract_foolbox_samples(wheel, tmp_path / "other")  # not the real wheel's hash
    ds = load_dataset("cifar10", "test", root=root)
    assert ds.source == "foolbox-samples" and ds.targets == [3, 8] and ds[0][0].shape == (3, 32, 32)
    assert load_dataset("imagenet", "val", root=root).targets == [243]
    with pytest.raises(DatasetNotFoundError, match="test split only"):
        load_dataset("cifar10", "train", root=root)
    assert data.fetch_foolbox_samples(root) == dest  # already there: no pip call


@pytest.mark.skipif(os.environ.get("ARTLIB_NETWORK_TESTS") != "1", reason="needs PyPI; set ARTLIB_NETWORK_TESTS=1")
def test_fetch_foolbox_samples_from_pypi(tmp_path):
    dest = data.fetch_foolbox_samples(tmp_path)
    assert len(os.listdir(dest)) == 60
    assert load_dataset("cifar10", "test", root=tmp_path).targets[:5] == [3, 8, 8, 0, 6]


# ---------------------------------------------------------------------------------------------- bad input
def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ValueError, match=r"'mnist'.*cifar10, svhn, gtsrb"):
        load_dataset("mnist", "train", root=tmp_path)
    with pytest.raises(ValueError, match=r"'valid'.*train, test"):
        load_dataset("gtsrb", "valid", root=tmp_path)
    with pytest.raises(ValueError, match=r"unknown option.*'severity'"):
        load_dataset("gtsrb", "train", root=tmp_path, severity=3)


@pytest.mark.parametrize("name,split", [(n, i.splits[0]) for n, i in data.DATASETS.items()])
def test_missing_data_names_path_and_command(tmp_path, name, split):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(name, split, root=tmp_path)
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError) and repr(name) in msg and str(tmp_path) in msg
    assert "manual download" in msg if name == "imagenet" else f"python -m artlib data download {name}" in msg


def test_root_from_env_then_default(tmp_path, monkeypatch):
    write_gtsrb(tmp_path)
    monkeypatch.setenv("ARTLIB_DATA", str(tmp_path))
    assert len(load_dataset("gtsrb", "train")) == 9
    monkeypatch.delenv("ARTLIB_DATA")
    monkeypatch.chdir(tmp_path)
    assert data.resolve_root() == tmp_path / "data"
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "data")):
        load_dataset("gtsrb", "train")


@pytest.mark.parametrize("subset,match", [(-1, "between 1"), (0, "between 1"), (10, "between 1"), ([0, 9], "range"),
                                          ([-1], "range"), (True, "int or a sequence"), ("3", "int or a sequence")])
def test_bad_subsets(tmp_path, subset, match):
    write_gtsrb(tmp_path)
    with pytest.raises(ValueError, match=match):
        load_dataset("gtsrb", "train", root=tmp_path, subset=subset)


def test_bad_cifar10c_and_flowers_options_and_downloads(tmp_path):
    write_cifar10c(tmp_path)
    with pytest.raises(ValueError, match="unknown CIFAR-10-C corruption 'rain'"):
        load_dataset("cifar10c", "test", root=tmp_path, corruption="rain")
    for bad in (0, 6, True, 2.0):
        with pytest.raises(ValueError, match="severity"):
            load_dataset("cifar10c", "test", root=tmp_path, severity=bad)
    write_flowers(tmp_path)
    with pytest.raises(ValueError, match="protocol"):
        load_dataset("flowers17", "train", root=tmp_path, protocol="random")
    with pytest.raises(RuntimeError, match="manual"):
        data.download("imagenet", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        data.download("mnist", tmp_path)
    with pytest.raises(IndexError):
        load_dataset("flowers17", "test", root=tmp_path)[34]


# ------------------------------------------------------------------------------------------------- subsets
def test_int_subset_is_stratified_deterministic_and_ordered(tmp_path):
    write_gtsrb(tmp_path)
    sub = load_dataset("gtsrb", "train", root=tmp_path, subset=4)  # classes 0, 0, 0, 1, 1, 1, 5, 5, 5
    assert sub.indices == [0, 1, 3, 6] and sub.targets == [0, 0, 1, 5] and sub.source == "gtsrb-official"
    assert load_dataset("gtsrb", "train", root=tmp_path, subset=4).indices == sub.indices
    picked = load_dataset("gtsrb", "train", root=tmp_path, subset=[8, 2, 2])
    assert picked.targets == [5, 0, 0] and torch.equal(picked[1][0], picked[2][0])


# ------------------------------------------------------------------------------------------ class balancing
class Counting(torch.utils.data.Dataset):
    """In-memory (image, label) dataset that counts item reads."""

    def __init__(self, labels, size=32):
        self.targets, self.reads = list(labels), 0
        self.images = torch.from_numpy(smooth_images(len(labels), size)).permute(0, 3, 1, 2).float() / 255

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        self.reads += 1
        return self.images[i], self.targets[i]


def test_class_balancing_is_lazy_exact_and_seeded():
    base = Counting([0] * 3 + [1] * 2 + [2] * 5 + list(range(3, 43)))  # 43 classes, unbalanced
    t0 = time.perf_counter()
    bal = data.ClassBalanced(base, per_class=10_000, seed=0)
    assert time.perf_counter() - t0 < 1.0 and base.reads == 0  # nothing decoded or augmented up front
    assert len(bal) == 43 * 10_000 and len(bal.targets) == len(bal)
    assert np.bincount(bal.targets).tolist() == [10_000] * 43
    for k in range(3):  # originals first, unchanged
        x, y = bal[k]
        assert y == 0 and torch.equal(x, base.images[k])
    assert bal.source_index(3) == (0, True) and bal.source_index(10_001) == (4, False)
    x, y = bal[5]
    assert y == 0 and x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert not torch.equal(x, base.images[2])
    assert torch.equal(x, bal[5][0]) and torch.equal(x, data.ClassBalanced(base, 10_000, seed=0)[5][0])
    assert not torch.equal(x, data.ClassBalanced(base, 10_000, seed=1)[5][0])
    truncated = data.ClassBalanced(base, per_class=2)
    assert len(truncated) == 86 and truncated.source_index(3) == (4, False)
    with pytest.raises(ValueError, match="per_class"):
        data.ClassBalanced(base, per_class=0)


def test_rar_augment_at_flowers_size_and_balance_option(tmp_path):
    x = torch.from_numpy(smooth_images(1, 128)[0]).permute(2, 0, 1).float() / 255
    out = data.rar_augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and 0.005 < (out - x).abs().mean() < 0.5
    write_gtsrb(tmp_path)
    bal = load_dataset("gtsrb", "train", root=tmp_path, balance=5)
    assert len(bal) == 15 and bal[4][0].shape == (3, 32, 32) and bal.source == "gtsrb-official"
    assert len(load_dataset("gtsrb", "train", root=tmp_path, balance=True)) == 30_000
    with pytest.raises(ValueError, match="per_class is needed"):
        data.balance_classes(load_dataset("cifar10", "test", root=_cifar_root(tmp_path)))


def _cifar_root(tmp_path):
    root = tmp_path / "c"
    write_cifar_batches(root)
    return root


# ---------------------------------------------------------------------------------------- CIFAR-10-C regenerated
def test_cifar10c_regenerated_from_cifar10(tmp_path):
    root = _cifar_root(tmp_path)
    ds = load_dataset("cifar10c", "test", root=root)
    assert ds.source == "regenerated from cifar-10-batches-py" and len(ds) == 15 * 5 * 6
    clean = load_dataset("cifar10", "test", root=root)
    assert ds.targets[:6] == clean.targets and ds.targets[-6:] == clean.targets
    for c in range(15):  # every corruption: shape, range, label
        x, y = ds[(c * 5 + 4) * 6 + 2]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert y == clean.targets[2]
    again = load_dataset("cifar10c", "test", root=root)
    assert all(torch.equal(ds[i][0], again[i][0]) for i in (0, 100, 449))  # deterministic per seed
    other = load_dataset("cifar10c", "test", root=root, seed=1, corruption="gaussian_noise")
    assert not torch.equal(other[0][0], ds[0][0])
    with pytest.raises(ValueError, match="unknown CIFAR-10-C corruption 'spatter'"):
        load_dataset("cifar10c", "test", root=root, corruption="spatter", regenerate=True)


def test_cifar10c_severity_increases_distortion():
    imgs = smooth_images(8, seed=5)

    def mad(c, s):
        return np.mean([np.abs(data.corrupt(x, c, s, np.random.default_rng([0, i])).astype(float) - x).mean()
                        for i, x in enumerate(imgs)])

    for c in data.CORRUPTIONS:
        d = [mad(c, s) for s in range(1, 6)]
        if c in ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "zoom_blur", "contrast",
                 "brightness", "pixelate", "jpeg_compression", "fog"):
            assert all(a < b for a, b in zip(d, d[1:])), (c, d)
        elif c == "elastic_transform":  # CIFAR-10-C's severity 1 has the largest affine jitter: not monotone
            assert d[4] > 0
        else:
            assert d[4] > d[0] > 0, (c, d)


# -------------------------------------------------------------------------------------------- status, stats
def test_dataset_status_on_fixture_root(tmp_path):
    write_gtsrb(tmp_path)
    write_flowers(tmp_path)
    write_cub(tmp_path)
    write_cifar10c(tmp_path)
    write_svhn(tmp_path)
    rows = {r["name"]: r for r in data.dataset_status(tmp_path)}
    assert list(rows) == list(data.DATASETS)
    assert {n: r["n_images"] for n, r in rows.items() if r["found"]} == {
        "svhn": 7, "gtsrb": 13, "flowers17": 170, "cub200": 4, "cifar10c": 30}
    assert not rows["cifar10"]["found"] and rows["cifar10"]["path"].startswith(str(tmp_path))
    assert rows["cifar10c"]["source"] == "CIFAR-10-C" and rows["gtsrb"]["source"] == "gtsrb-official"


def test_registry_and_mean_std(tmp_path):
    for name, info in data.DATASETS.items():
        assert info.name == name and len(info.mean) == len(info.std) == 3 and all(s > 0 for s in info.std)
    assert (data.DATASETS["gtsrb"].num_classes, data.DATASETS["gtsrb"].balance_to) == (43, 10_000)
    assert data.DATASETS["flowers17"].image_size == 128 and data.DATASETS["cub200"].num_classes == 200
    ds = load_dataset("cifar10", "train", root=_cifar_root(tmp_path))
    mean, std = data.compute_mean_std(ds, batch_size=7)
    x = torch.stack([ds[i][0] for i in range(len(ds))]).double()
    assert np.allclose(mean, x.mean((0, 2, 3))) and np.allclose(std, x.std((0, 2, 3), unbiased=False))


# ----------------------------------------------------------------------------------- real subsets (shared data)
pytestmark_shared = pytest.mark.shared_data


@pytestmark_shared
def test_shared_cifar10_jpeg(shared_data):
    train, test = (load_dataset("cifar10", s, root=shared_data) for s in ("train", "test"))
    assert (len(train), len(test)) == (10_000, 10_000) and train.source == "cifar10-jpeg"
    assert np.bincount(train.targets).tolist() == [1000] * 10 == np.bincount(test.targets).tolist()
    assert train.paths[0].parent.name == "airplane" and train.targets[0] == 0
    assert test.paths[-1].parent.name == "truck" and test.targets[-1] == 9
    assert test[1234][0].shape == (3, 32, 32)


@pytestmark_shared
def test_shared_gtsrb(shared_data):
    train, test = (load_dataset("gtsrb", s, root=shared_data) for s in ("train", "test"))
    assert (len(train), len(test)) == (2580, 1290)
    assert np.bincount(train.targets).tolist() == [60] * 43 and np.bincount(test.targets).tolist() == [30] * 43
    assert train[0][0].shape == test[-1][0].shape == (3, 32, 32)


@pytestmark_shared
def test_shared_cub_boxes_inside_image(shared_data):
    splits = [load_dataset("cub200", s, root=shared_data) for s in ("train", "test")]
    assert sum(len(d) for d in splits) == 300 and len(set(splits[0].ids) & set(splits[1].ids)) == 0
    assert sorted(set(splits[0].targets)) == list(range(50))
    for ds in splits:
        for i in range(0, len(ds), 3):
            x, y, box = ds[i]
            assert x.shape == (3, 224, 224)
            assert 0 <= box[0] <= box[2] <= 223 and 0 <= box[1] <= box[3] <= 223, (ds.paths[i], box)
            assert (box[2] - box[0] + 1) * (box[3] - box[1] + 1) >= 16  # the bird stays in the crop


@pytestmark_shared
def test_shared_flowers17(shared_data):
    train, test = (load_dataset("flowers17", s, root=shared_data) for s in ("train", "test"))
    assert len(train) + len(test) == 170 and (len(train), len(test)) == (153, 17)
    assert np.bincount(train.targets + test.targets).tolist() == [10] * 17
    assert test[0][0].shape == (3, 128, 128)


@pytestmark_shared
def test_shared_imagenet_samples(shared_data):
    ds = load_dataset("imagenet", "val", root=shared_data)
    assert len(ds) == 100 and ds.source == "imagenet-samples"
    assert ds.targets == [10 * i for i in range(100)]
    assert ds.paths[0].name.startswith("n01440764") and ds.targets[0] == 0  # tench
    assert ds[37][0].shape == (3, 224, 224)


@pytestmark_shared
def test_shared_foolbox_samples_fallback(shared_data, tmp_path):
    (tmp_path / "foolbox-samples").symlink_to(shared_data / "foolbox-samples")
    ds = load_dataset("cifar10", "test", root=tmp_path)
    assert ds.source == "foolbox-samples" and len(ds) == 20 and ds.targets[:5] == [3, 8, 8, 0, 6]
    assert load_dataset("imagenet", "val", root=tmp_path).targets[:3] == [243, 559, 438]


@pytestmark_shared
def test_shared_cifar10c_regenerated_and_status(shared_data):
    ds = load_dataset("cifar10c", "test", root=shared_data, corruption="fog", severity=5, subset=10)
    assert ds.source == "regenerated from cifar10-jpeg" and len(ds) == 10 and ds[9][0].shape == (3, 32, 32)
    rows = {r["name"]: r for r in data.dataset_status(shared_data)}
    assert {n: rows[n]["n_images"] for n in ("cifar10", "gtsrb", "flowers17", "cub200", "imagenet")} == {
        "cifar10": 20_000, "gtsrb": 3870, "flowers17": 170, "cub200": 300, "imagenet": 100}
    assert not rows["svhn"]["found"]
