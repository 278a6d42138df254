"""Figure and table helpers shared by the notebooks: atomic writes of figures (PNG + PDF) and tables (CSV + Markdown)
under ``figures/``, image grids with optional box overlays, and heatmaps.

Every notebook writes its outputs through :func:`save_figure` and :func:`save_table`, so a killed run never leaves a
half-written file behind and every table exists in both a machine-readable and a readable form.
"""
from __future__ import annotations

import os
from pathlib import Path

from artlib.checkpoints import atomic_write

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"


def figures_dir(path: str | Path | None = None) -> Path:
    """The output folder: ``path``, else ``$ARTLIB_FIGURES``, else ``<repo>/figures``; created when missing."""
    out = Path(path or os.environ.get("ARTLIB_FIGURES") or FIGURES)
    out.mkdir(parents=True, exist_ok=True)
    return out


# No timestamps in the files, so re-running a notebook rewrites byte-identical figures.
_STABLE_METADATA = {"pdf": {"CreationDate": None}, "png": {"Software": None}}


def save_figure(fig, name: str, out_dir: str | Path | None = None, formats=("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``<figures>/<name>.<fmt>`` for each format, atomically; return the paths.

    Example:
        >>> fig, ax = plt.subplots(); save_figure(fig, "table1_cifar10")   # figures/table1_cifar10.png and .pdf
    """
    out = figures_dir(out_dir)
    paths = []
    for fmt in formats:
        paths.append(atomic_write(out / f"{name}.{fmt}",
                                  lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight",
                                                                 metadata=_STABLE_METADATA.get(fmt))))
    return paths


def save_table(df, name: str, out_dir: str | Path | None = None, floatfmt: str = ".4g") -> list[Path]:
    """Write a pandas DataFrame as ``<figures>/<name>.csv`` and ``<name>.md`` (Markdown), atomically."""
    out = figures_dir(out_dir)
    csv = atomic_write(out / f"{name}.csv", lambda f: f.write(df.to_csv(index=False).encode()))
    md = atomic_write(out / f"{name}.md",
                      lambda f: f.write((df.to_markdown(index=False, floatfmt=floatfmt) + "\n").encode()))
    return [csv, md]


def update_block(path: str | Path, begin: str, end: str, body: str) -> bool:
    """Replace the text between the marker lines ``begin`` and ``end`` of the file ``path`` (a README block rendered
    from a saved table) with ``body``, atomically; returns whether it changed. ValueError names a missing marker.

    Example::

        >>> update_block("README.md", "<!-- plan:begin -->", "<!-- plan:end -->", "| a |\\n|---|\\n| 1 |")
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    for marker in (begin, end):
        if marker not in text:
            raise ValueError(f"{path}: marker {marker!r} not found")
    start, stop = text.index(begin) + len(begin), text.index(end)
    new = text[:start] + "\n" + body + "\n" + text[stop:]
    if new != text:
        atomic_write(path, lambda f: f.write(new.encode("utf-8")))
    return new != text


def image_grid(images, titles=None, boxes=None, ncols: int = 8, size: float = 1.6, suptitle: str | None = None):
    """Plot a batch of [B, C, H, W] images in [0, 1] as a grid, with optional titles and (x0, y0, x1, y1) boxes.

    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
        if boxes is not None:
            x0, y0, x1, y1 = [float(v) for v in boxes[i]]
            ax.add_patch(Rectangle((x0, y0), x1 - x0 + 1, y1 - y0 + 1, fill=False, color="lime", linewidth=1.2))
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def heatmaps(maps, titles=None, ncols: int = 8, size: float = 1.6, cmap: str = "viridis"):
    """Plot a batch of [B, H, W] maps (e.g. ``attribution.to_saliency_map`` output) as a grid; returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(maps)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(maps[i].detach().cpu().numpy(), cmap=cmap)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    fig.tight_layout()
    return fig
