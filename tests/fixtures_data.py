"""Writers of tiny dataset trees in each dataset's official on-disk format (and of the official archives that hold
them), for the data, download and WSOL tests.

Each ``write_*`` function creates the files under ``root`` exactly as the official archive (or torchvision's
downloader) lays them out, with small synthetic images, and returns what the test needs to check the loader.
"""
from __future__ import annotations

import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from artlib.data import CIFAR10_CLASSES, imagenet_wnids


def smooth_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """``[n, size, size, 3]`` uint8 images that look like photos to a corruption (smooth, with some detail)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((size, size), Image.BILINEAR)
        img = np.asarray(coarse, dtype=np.float64) + rng.normal(0, 8, (size, size, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def write_cifar_batches(root: Path, per_batch: int = 4, n_test: int = 6) -> dict:
    """``cifar-10-batches-py/`` with pickled dicts (bytes keys, as the official Python-2 pickles load under py3)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = {"train": ([], []), "test": ([], [])}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        imgs = smooth_images(n, seed=10 + k)
        labels = rng.integers(0, 10, n).tolist()
        data = imgs.transpose(0, 3, 1, 2).reshape(n, 3072)  # row = R plane, G plane, B plane
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(n)]}, fh, protocol=2)
        split = "test" if name == "test_batch" else "train"
        out[split][0].append(imgs)
        out[split][1].extend(labels)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": per_batch,
                     b"num_vis": 3072}, fh, protocol=2)
    return {s: (np.concatenate(v[0]), v[1]) for s, v in out.items()}


def write_svhn(root: Path, n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """``svhn/test_32x32.mat``: X ``[32, 32, 3, N]`` uint8 and y ``[N, 1]`` in 1..10, 10 meaning digit 0."""
    from scipy.io import savemat
    (root / "svhn").mkdir(parents=True)
    imgs = smooth_images(n, seed=3)
    y = np.array([[10], [1], [2], [10], [9], [5], [3]], dtype=np.uint8)[:n]
    savemat(root / "svhn" / "test_32x32.mat", {"X": imgs.transpose(1, 2, 3, 0), "y": y})
    return imgs, y.ravel()


def write_gtsrb(root: Path) -> dict:
    """Official GTSRB tree: per-class ``GT-000NN.csv`` (``;``-separated) and ``GT-final_test.csv``; ppm images of
    varying sizes. Returns the expected train and test labels."""
    base = root / "gtsrb" / "GTSRB"
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
    train = []
    for c in (0, 1, 5):
        folder = base / "Final_Training" / "Images" / f"{c:05d}"
        folder.mkdir(parents=True)
        rows = []
        for k in range(3):
            w, h = 30 + 4 * k, 34 - k
            name = f"{k // 2:05d}_{k:05d}.ppm"
            Image.fromarray(smooth_images(1, size=max(w, h), seed=c * 10 + k)[0][:h, :w]).save(folder / name)
            rows.append(f"{name};{w};{h};5;5;{w - 5};{h - 5};{c}\n")
            train.append(c)
        (folder / f"GT-{c:05d}.csv").write_text(header + "".join(rows))
    test_dir = base / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    test = [5, 0, 1, 1]
    rows = []
    for k, c in enumerate(test):
        Image.fromarray(smooth_images(1, size=40, seed=100 + k)[0]).save(test_dir / f"{k:05d}.ppm")
        rows.append(f"{k:05d}.ppm;40;40;5;5;35;35;{c}\n")
    (base / "Final_Test" / "GT-final_test.csv").write_text(header + "".join(rows))
    return {"train": train, "test": test}


def write_cifar10c(root: Path, n: int = 3, corruptions=("gaussian_noise", "fog")) -> dict:
    """``CIFAR-10-C/<corruption>.npy`` (``[5 n, 32, 32, 3]`` uint8, severity-major) and ``labels.npy`` (``[5 n]``)."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    arrays = {c: smooth_images(5 * n, seed=k) for k, c in enumerate(corruptions)}
    for c, a in arrays.items():
        np.save(folder / f"{c}.npy", a)
    return {"labels": labels, "arrays": arrays, "n": n}


def write_flowers(root: Path, per_class: int = 10, splits: bool = True) -> dict:
    """``flowers17/jpg/image_NNNN.jpg`` for the first ``per_class`` images of each class (class = (N-1)//80) and,
    if ``splits``, a ``datasplits.mat`` with 1-based ids: trn{f} the first 5, val{f} the next 3, tst{f} the rest."""
    from scipy.io import savemat
    jpg = root / "flowers17" / "jpg"
    jpg.mkdir(parents=True)
    ids = [c * 80 + k + 1 for c in range(17) for k in range(per_class)]
    tiny = Image.fromarray(smooth_images(1, size=12)[0])
    for i in ids:
        tiny.save(jpg / f"image_{i:04d}.jpg")
    def by_pos(lo, hi):  # ids whose position within their class is in [lo, hi), as a MATLAB double row
        return np.array([[i for i in ids if lo <= (i - 1) % 80 < hi]], dtype=np.float64)

    keys = {}
    for fold in (1, 2, 3):
        keys.update({f"trn{fold}": by_pos(0, 5), f"val{fold}": by_pos(5, 8), f"tst{fold}": by_pos(8, per_class)})
    keys["trn2"] = by_pos(3, 8)  # fold 2 differs from fold 1
    if splits:
        savemat(root / "flowers17" / "datasplits.mat", keys)
    return {"ids": ids, "splits": {k: v.ravel().astype(int).tolist() for k, v in keys.items()}}


def write_cub(root: Path) -> list[dict]:
    """``CUB_200_2011/`` text files (1-based ids and labels, boxes ``x y w h``) and images of different sizes."""
    base = root / "CUB_200_2011"
    items = [dict(id=1, path="001.Black_footed_Albatross/a_1.jpg", label=1, train=1, size=(400, 300),
                  box=(60.0, 27.0, 325.0, 250.0)),
             dict(id=2, path="001.Black_footed_Albatross/a_2.jpg", label=1, train=0, size=(200, 500),
                  box=(0.0, 0.0, 200.0, 500.0)),
             dict(id=3, path="017.Cardinal/c_3.jpg", label=17, train=1, size=(333, 256),
                  box=(139.0, 30.0, 153.5, 200.0)),
             dict(id=10, path="017.Cardinal/c_10.jpg", label=17, train=0, size=(256, 256),
                  box=(10.0, 100.0, 20.0, 30.0))]
    for it in items:
        (base / "images" / it["path"]).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", it["size"], (120, 80, 40)).save(base / "images" / it["path"])
    write = lambda name, fmt: (base / name).write_text("".join(fmt(it) + "\n" for it in items))  # noqa: E731
    write("images.txt", lambda it: f"{it['id']} {it['path']}")
    write("image_class_labels.txt", lambda it: f"{it['id']} {it['label']}")
    write("train_test_split.txt", lambda it: f"{it['id']} {it['train']}")
    write("bounding_boxes.txt", lambda it: f"{it['id']} " + " ".join(str(v) for v in it["box"]))
    return items


def write_imagenet(root: Path) -> dict:
    """``imagenet/val/<wnid>/*.JPEG`` for three classes and an ``imagenet-samples/<wnid>_<name>.JPEG`` flat folder."""
    wnids = imagenet_wnids()
    img = Image.fromarray(smooth_images(1, size=40)[0])
    chosen = {0: 2, 500: 1, 999: 1}  # class index -> number of images
    for idx, n in chosen.items():
        folder = root / "imagenet" / "val" / wnids[idx]
        folder.mkdir(parents=True)
        for k in range(n):
            img.save(folder / f"ILSVRC2012_val_{idx:05d}{k}.JPEG")
    flat = root / "imagenet-samples"
    flat.mkdir()
    for idx, name in [(10, "goldfinch"), (20, "water_ouzel"), (0, "tench")]:
        img.save(flat / f"{wnids[idx]}_{name}.JPEG")
    return {"folder": [0, 0, 500, 999], "flat": [0, 10, 20]}


def write_foolbox_wheel(path: Path) -> list[str]:
    """A wheel-shaped zip with the layout of ``foolbox-3.3.4-py3-none-any.whl`` (``foolbox/data/*``)."""
    buf = {}
    for name, size in [("cifar10_00_3.png", 32), ("cifar10_01_8.png", 32), ("cifar100_00_49.png", 32),
                       ("imagenet_00_243.jpg", 64), ("mnist_00_7.png", 28)]:
        tmp = path.parent / name
        Image.fromarray(smooth_images(1, size=size)[0]).save(tmp)
        buf[f"foolbox/data/{name}"] = tmp.read_bytes()
        tmp.unlink()
    buf["foolbox/__init__.py"] = b""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in buf.items():
            z.writestr(name, data)
    return ["cifar10_00_3.png", "cifar10_01_8.png", "imagenet_00_243.jpg", "mnist_00_7.png"]


def write_trimaps(root: Path) -> tuple[list[int], dict]:
    """``flowers17/jpg/image_NNNN.jpg`` + ``flowers17/trimaps/{image_NNNN.png, imlist.mat}`` as released."""
    from scipy.io import savemat
    jpg, tri = root / "flowers17" / "jpg", root / "flowers17" / "trimaps"
    jpg.mkdir(parents=True)
    tri.mkdir(parents=True)
    ids = [3, 81, 1290]
    sizes = {3: (40, 30), 81: (32, 32), 1290: (50, 60)}
    truth = {}
    for i in ids + [5]:                                     # image 5 has a jpg but no trimap
        w, h = sizes.get(i, (20, 20))
        Image.new("RGB", (w, h), (30, 200, 60)).save(jpg / f"image_{i:04d}.jpg")
        if i == 5:
            continue
        rgb = np.zeros((h, w, 3), dtype=np.uint8)
        rgb[h // 4: h // 2, w // 4: 3 * w // 4] = (128, 0, 0)          # foreground
        rgb[h // 2: h // 2 + 2] = (128, 128, 128)                      # boundary / unsure: background
        rgb[-2:, :] = (128, 128, 0)
        truth[i] = np.all(rgb == (128, 0, 0), axis=-1)
        im = Image.fromarray(rgb)
        if i == 81:
            im = im.convert("P", palette=Image.ADAPTIVE, colors=8)      # a palette PNG, as many released trimaps
        elif i == 1290:
            im = im.convert("RGBA")
        im.save(tri / f"image_{i:04d}.png")
    savemat(tri / "imlist.mat", {"imlist": np.array([ids], dtype=np.float64)})  # 1 x N double, as in MATLAB
    return ids, truth


def write_official_archives(name: str, src: Path, dst: Path) -> dict:
    """The files :data:`artlib.data.DOWNLOADS` lists for ``name``, built from a fixture tree written under ``src``
    and laid out as the official ones (same file names, formats and folders inside): ``{file name: path}`` in
    ``dst``."""
    src.mkdir(parents=True, exist_ok=True)
    dst.mkdir(parents=True, exist_ok=True)
    if name == "gtsrb":
        write_gtsrb(src)
        base = src / "gtsrb"
        for fname, members in [("GTSRB_Final_Training_Images.zip", ["GTSRB/Final_Training"]),
                               ("GTSRB_Final_Test_Images.zip", ["GTSRB/Final_Test/Images"])]:
            with zipfile.ZipFile(dst / fname, "w") as z:
                for m in members:
                    for f in (base / m).rglob("*"):
                        z.write(f, f.relative_to(base))
        with zipfile.ZipFile(dst / "GTSRB_Final_Test_GT.zip", "w") as z:
            z.write(base / "GTSRB/Final_Test/GT-final_test.csv", "GT-final_test.csv")
        return {f: dst / f for f in ("GTSRB_Final_Training_Images.zip", "GTSRB_Final_Test_Images.zip",
                                     "GTSRB_Final_Test_GT.zip")}
    if name == "svhn":
        write_svhn(src)
        shutil.copy(src / "svhn" / "test_32x32.mat", dst / "test_32x32.mat")
        shutil.copy(src / "svhn" / "test_32x32.mat", dst / "train_32x32.mat")
        return {f: dst / f for f in ("train_32x32.mat", "test_32x32.mat")}
    writer, folder, arcname, top = {
        "cifar10": (write_cifar_batches, ".", "cifar-10-python.tar.gz", "cifar-10-batches-py"),
        "flowers17": (write_flowers, "flowers17", "17flowers.tgz", "jpg"),
        "flowers17-trimaps": (write_trimaps, "flowers17", "trimaps.tgz", "trimaps"),
        "cub200": (write_cub, ".", "CUB_200_2011.tgz", "CUB_200_2011"),
        "cifar10c": (write_cifar10c, ".", "CIFAR-10-C.tar", "CIFAR-10-C")}[name]
    writer(src)
    out = {}
    if name == "flowers17":
        shutil.copy(src / "flowers17" / "datasplits.mat", dst / "datasplits.mat")
        out["datasplits.mat"] = dst / "datasplits.mat"
    with tarfile.open(dst / arcname, "w" if arcname.endswith(".tar") else "w:gz") as t:
        t.add(src / folder / top, arcname=top)
    return {**out, arcname: dst / arcname}
