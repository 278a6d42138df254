"""CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019), regenerated locally with the CIFAR-10-C constants.

Used by ``artlib.data`` when the released ``CIFAR-10-C/*.npy`` files are absent (ART Sec. 5 corruption robustness).
The constants follow hendrycks/robustness ``ImageNet-C/create_c/make_cifar_c.py`` (32x32 images); see ``corrupt``.
"""
from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")


def corrupt(x: np.ndarray, corruption: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One CIFAR-10-C corruption of a ``[32, 32, 3]`` uint8 image, with the CIFAR-10-C constants -> uint8 image.

    Re-implements hendrycks/robustness ``ImageNet-C/create_c/make_cifar_c.py`` with numpy / scipy / PIL (constants
    copied from it) and ``rng`` in place of the global numpy generator, so results are deterministic per seed but not
    bit-identical to the released ``.npy`` files. Differences: ``motion_blur`` and ``snow`` use a numpy line kernel in
    place of ImageMagick's MotionBlurImage (as the ``imagecorruptions`` package does); ``frost`` needs the frost
    textures of the ``imagecorruptions-imaug`` package; ``glass_blur`` keeps the original's one-sided "swap".
    As in the original, the float result is truncated to uint8.
    """
    if corruption not in _CORRUPT_FNS:
        raise ValueError(f"unknown corruption {corruption!r}; choices: {', '.join(CORRUPTIONS)}")
    out = _CORRUPT_FNS[corruption](np.asarray(x, dtype=np.uint8), severity, rng)
    return np.uint8(np.clip(np.asarray(out, dtype=np.float64), 0, 255))


def _gauss(x, sigma, mode="nearest", truncate=4.0):
    from scipy.ndimage import gaussian_filter  # skimage.filters.gaussian(..., multichannel=True) equivalent
    return gaussian_filter(x, sigma=(sigma, sigma, 0) if x.ndim == 3 else sigma, mode=mode, truncate=truncate)


def _clipped_zoom(img, zoom):
    from scipy.ndimage import zoom as scizoom
    h = img.shape[0]
    ch = int(np.ceil(h / zoom))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom, zoom, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim:trim + h, trim:trim + h]


def _line_blur(x, radius, sigma, angle):
    """ImageMagick-style motion blur: one-sided Gaussian weights along ``angle``, edge pixels repeated."""
    width = 2 * radius + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    h, w = x.shape[:2]
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(width):
        dy = -math.ceil(i * math.sin(math.radians(angle)) - 0.5)
        dx = -math.ceil(i * math.cos(math.radians(angle)) - 0.5)
        if abs(dy) >= h or abs(dx) >= w:
            break
        rows, cols = np.clip(np.arange(h) - dy, 0, h - 1), np.clip(np.arange(w) - dx, 0, w - 1)
        out += k[i] * x[rows][:, cols]
    return out


def _plasma_fractal(mapsize, wibbledecay, rng):
    """Diamond-square height map in [0, 1] (``plasma_fractal`` of make_cifar_c.py)."""
    m = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corner = m[0::step, 0::step]
        sq = corner + np.roll(corner, -1, axis=0)
        sq = sq + np.roll(sq, -1, axis=1)
        m[half::step, half::step] = sq / 4 + wibble * rng.uniform(-wibble, wibble, sq.shape)
        dr, ul = m[half::step, half::step], m[0::step, 0::step]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        m[0::step, half::step] = lt / 4 + wibble * rng.uniform(-wibble, wibble, lt.shape)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        m[half::step, 0::step] = tt / 4 + wibble * rng.uniform(-wibble, wibble, tt.shape)
        step //= 2
        wibble /= wibbledecay
    m -= m.min()
    return m / m.max()


@lru_cache(maxsize=6)
def _frost_texture(idx: int) -> np.ndarray:
    import importlib.util
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("frost needs the frost textures of `imagecorruptions-imaug` (pip install "
                           "imagecorruptions-imaug==1.1.5)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "frost"
    path = folder / ["frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"][idx]
    t = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None]
    t = torch.nn.functional.interpolate(t, scale_factor=0.2, mode="bilinear", align_corners=False)  # cv2 fx=0.2
    return t[0].permute(1, 2, 0).numpy()


def _affine_reflect(img, src, dst):
    """cv2.warpAffine(img, getAffineTransform(src, dst), BORDER_REFLECT_101) with scipy; points are (x, y)."""
    from scipy.ndimage import affine_transform
    a = np.linalg.solve(np.c_[src, np.ones(3)], dst).T  # 2x3, maps src -> dst
    inv = np.linalg.inv(np.r_[a, [[0, 0, 1]]])[:2]  # output (x, y) -> input (x, y)
    mat, off = inv[::-1, :2][:, ::-1], inv[::-1, 2]  # the same in (row, col)
    return np.stack([affine_transform(img[..., ch], mat, off, order=1, mode="mirror") for ch in range(3)], -1)


def _c_gaussian_noise(x, s, rng):
    c = [0.04, 0.06, .08, .09, .10][s - 1]
    return np.clip(x / 255. + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _c_shot_noise(x, s, rng):
    c = [500, 250, 100, 75, 50][s - 1]
    return np.clip(rng.poisson(x / 255. * c) / c, 0, 1) * 255


def _c_impulse_noise(x, s, rng):
    c = [.01, .02, .03, .05, .07][s - 1]  # skimage random_noise(mode='s&p', amount=c): half salt, half pepper
    flip, salt = rng.random(x.shape) <= c, rng.random(x.shape) <= 0.5
    return np.where(flip, salt * 1.0, x / 255.) * 255


def _c_defocus_blur(x, s, rng):
    from scipy.ndimage import correlate, correlate1d
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][s - 1]
    grid = np.arange(-8, 9)
    disk = ((grid[:, None] ** 2 + grid[None] ** 2) <= radius ** 2).astype(np.float64)
    g = np.exp(-np.arange(-1, 2) ** 2 / (2 * alias ** 2))  # cv2.GaussianBlur ksize 3 anti-aliasing
    disk = correlate1d(correlate1d(disk / disk.sum(), g / g.sum(), 0, mode="mirror"), g / g.sum(), 1, mode="mirror")
    return np.clip(np.stack([correlate(x[..., ch] / 255., disk, mode="mirror") for ch in range(3)], -1), 0, 1) * 255


def _c_glass_blur(x, s, rng):
    sigma, delta, iters = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][s - 1]
    x = np.uint8(_gauss(x / 255., sigma) * 255)
    h, w = x.shape[:2]
    for _ in range(iters):
        for r in range(h - delta, delta, -1):
            for col in range(w - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=2)
                x[r, col] = x[r + dy, col + dx]  # the original's tuple "swap" of numpy views copies one way only
    return np.clip(_gauss(x / 255., sigma), 0, 1) * 255


def _c_motion_blur(x, s, rng):
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][s - 1]
    return np.clip(_line_blur(x.astype(np.float64), radius, sigma, rng.uniform(-45, 45)), 0, 255)


def _c_zoom_blur(x, s, rng):
    zooms = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
             np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][s - 1]
    x = (x / 255.).astype(np.float32)
    out = sum(_clipped_zoom(x, z) for z in zooms)
    return np.clip((x + out) / (len(zooms) + 1), 0, 1) * 255


def _c_snow(x, s, rng):
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][s - 1]
    x = x.astype(np.float32) / 255.
    snow = _clipped_zoom(rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])[..., None], c[2])
    snow[snow < c[3]] = 0
    snow = np.uint8(np.clip(snow, 0, 1) * 255).astype(np.float64)
    snow = np.round(_line_blur(snow, c[4], c[5], rng.uniform(-135, -45))) / 255.
    gray = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + snow + np.rot90(snow, k=2), 0, 1) * 255


def _c_frost(x, s, rng):
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][s - 1]
    frost = _frost_texture(int(rng.integers(5)))
    h, w = x.shape[:2]
    r0, c0 = rng.integers(0, frost.shape[0] - h), rng.integers(0, frost.shape[1] - w)
    return np.clip(c[0] * x + c[1] * frost[r0:r0 + h, c0:c0 + w], 0, 255)


def _c_fog(x, s, rng):
    c = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][s - 1]
    x = x / 255.
    peak = x.max()
    x = x + c[0] * _plasma_fractal(32, c[1], rng)[:x.shape[0], :x.shape[1]][..., None]
    return np.clip(x * peak / (peak + c[0]), 0, 1) * 255


def _c_brightness(x, s, rng):
    c = [.05, .1, .15, .2, .3][s - 1]  # HSV value + c: hue and saturation kept, so RGB scales by v'/v
    x = x / 255.
    v = x.max(axis=-1, keepdims=True)
    new_v = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * new_v / np.maximum(v, 1e-12), new_v) * 255


def _c_contrast(x, s, rng):
    c = [.75, .5, .4, .3, 0.15][s - 1]
    x = x / 255.
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _c_elastic_transform(x, s, rng):
    from scipy.ndimage import map_coordinates
    size = 32
    c = [(size * 0, size * 0, size * 0.08), (size * 0.05, size * 0.2, size * 0.07),
         (size * 0.08, size * 0.06, size * 0.06), (size * 0.1, size * 0.04, size * 0.05),
         (size * 0.1, size * 0.03, size * 0.03)][s - 1]
    img = x.astype(np.float32) / 255.
    shape = img.shape
    center, sq = np.float32(shape[:2]) // 2, min(shape[:2]) // 3
    pts1 = np.float32([center + sq, [center[0] + sq, center[1] - sq], center - sq])
    pts2 = pts1 + rng.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    img = _affine_reflect(img, pts1, pts2)
    dx = (_gauss(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (_gauss(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    xx, yy, zz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    coords = np.stack([(yy + dy[..., None]).ravel(), (xx + dx[..., None]).ravel(), zz.ravel()])
    return np.clip(map_coordinates(img, coords, order=1, mode="reflect").reshape(shape), 0, 1) * 255


def _c_pixelate(x, s, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    h, w = x.shape[:2]
    im = Image.fromarray(x).resize((int(w * c), int(h * c)), Image.BOX)
    return np.asarray(im.resize((w, h), Image.BOX), dtype=np.float64)


def _c_jpeg_compression(x, s, rng):
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=[80, 65, 58, 50, 40][s - 1])
    return np.asarray(Image.open(buf), dtype=np.float64)


_CORRUPT_FNS = {name: globals()[f"_c_{name}"] for name in CORRUPTIONS}
