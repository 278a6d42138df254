"""Figure/table writers: both formats, atomic (no temp files left), readable permissions, byte-stable re-runs."""
import os

import matplotlib
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")

from artlib import plots  # noqa: E402


def test_save_figure_and_table(tmp_path):
    fig = plots.image_grid(torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)), titles=[0, 1, 2],
                           boxes=torch.tensor([[0, 0, 3, 3]] * 3))
    first = [p.read_bytes() for p in plots.save_figure(fig, "grid", out_dir=tmp_path)]
    second = [p.read_bytes() for p in plots.save_figure(fig, "grid", out_dir=tmp_path)]
    assert first == second, "figures must be byte-identical across re-runs (no timestamps)"
    df = pd.DataFrame({"method": ["natural", "art"], "acc": [0.91234, 0.8]})
    csv, md = plots.save_table(df, "table", out_dir=tmp_path)
    assert pd.read_csv(csv).equals(df)
    assert "| natural" in md.read_text() and "0.9123" in md.read_text()
    names = sorted(os.listdir(tmp_path))
    assert names == ["grid.pdf", "grid.png", "table.csv", "table.md"], names
    for name in names:
        assert os.stat(tmp_path / name).st_mode & 0o044, f"{name} is not readable by others"


def test_failed_write_leaves_nothing(tmp_path):
    class Broken:
        def to_csv(self, index=False):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        plots.save_table(Broken(), "t", out_dir=tmp_path)
    assert os.listdir(tmp_path) == []


def test_update_block_rewrites_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- b -->\nold\n<!-- e -->\noutro\n", encoding="utf-8")
    assert plots.update_block(readme, "<!-- b -->", "<!-- e -->", "new") is True
    assert readme.read_text(encoding="utf-8") == "intro\n<!-- b -->\nnew\n<!-- e -->\noutro\n"
    assert plots.update_block(readme, "<!-- b -->", "<!-- e -->", "new") is False     # unchanged: no rewrite
    with pytest.raises(ValueError, match=r"README.md: marker '<!-- x -->' not found"):
        plots.update_block(readme, "<!-- x -->", "<!-- e -->", "new")
    assert readme.read_text(encoding="utf-8").count("new") == 1
