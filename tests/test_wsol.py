"""Tests of artlib.wsol: IoU and box fitting on hand-made heatmaps with known answers, the threshold sweep, GT-known /
Top-1 localisation on a tiny fixture, masks and Top-1 Seg, heatmap post-processing, boxes under the CUB transforms,
the Flowers-17 trimaps loader on a fixture in the official format, the figures, and bad inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from artlib import data, models, wsol
from fixtures_data import write_trimaps


# ----------------------------------------------------------------------------------------------------------- IoU
def test_iou_known_values_inclusive_corners():
    a = torch.tensor([0.0, 0, 9, 9])                      # 10 x 10 = 100 pixels
    assert wsol.iou(a, a).item() == 1.0
    assert wsol.iou(a, torch.tensor([5.0, 0, 14, 9])).item() == pytest.approx(50 / 150)
    assert wsol.iou(a, torch.tensor([0.0, 0, 9, 4])).item() == pytest.approx(0.5)   # half of it, inside
    assert wsol.iou(torch.tensor([3.0, 3, 3, 3]), torch.tensor([3.0, 3, 3, 3])).item() == 1.0  # one pixel
    # touching in one column: 1 x 10 shared pixels
    assert wsol.iou(a, torch.tensor([9.0, 0, 18, 9])).item() == pytest.approx(10 / 190)
    # disjoint boxes: 0 (the ART / ADL calculate_IOU multiplies two negative overlaps into a positive "IoU")
    assert wsol.iou(a, torch.tensor([20.0, 20, 29, 29])).item() == 0.0
    assert wsol.iou(torch.tensor([0.0, 0, -1, -1]), torch.tensor([0.0, 0, -1, -1])).item() == 0.0  # empty boxes


def test_iou_broadcasts_and_dtypes():
    a = torch.tensor([[0.0, 0, 9, 9], [0, 0, 4, 4]])           # [2, 4]
    b = torch.tensor([[[0.0, 0, 9, 9]], [[0, 0, 4, 4]], [[50, 50, 60, 60]]])  # [3, 1, 4]
    out = wsol.iou(a, b)
    assert out.shape == (3, 2) and out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([[1.0, 0.25], [0.25, 1.0], [0.0, 0.0]]))
    assert wsol.iou(np.array([0, 0, 1, 1]), [0, 0, 1, 1]).dtype == torch.float64  # ints / lists accepted
    assert wsol.iou(a.double(), a).dtype == torch.float64


@pytest.mark.parametrize("a, b", [(torch.zeros(3), torch.zeros(4)), (torch.zeros(2, 4), torch.zeros(3, 4)),
                                  (torch.tensor(1.0), torch.zeros(4))])
def test_iou_bad_shapes(a, b):
    with pytest.raises(ValueError, match="box"):
        wsol.iou(a, b)


# --------------------------------------------------------------------------------------------------- box fitting
def test_box_from_heatmap_single_blob_and_single_map():
    h = torch.zeros(20, 30)
    h[4:9, 10:17] = 1.0                                     # rows 4..8, cols 10..16
    box = wsol.box_from_heatmap(h, 0.5)
    assert box.shape == (4,) and box.dtype == torch.float32
    assert box.tolist() == [10, 4, 16, 8]
    assert wsol.box_from_heatmap(h[None], 0.5).tolist() == [[10, 4, 16, 8]]


def test_box_from_heatmap_largest_component_wins():
    h = torch.zeros(2, 16, 16)
    h[0, 0:2, 0:2] = 1.0          # 4 pixels, first in raster order, and the map's maximum
    h[0, 8:13, 5:12] = 0.6        # 35 pixels, lower values: still the largest component above 0.2 * max
    h[1, 10:12, 10:12] = 0.9      # image 1: a single blob
    boxes = wsol.box_from_heatmap(h, 0.2)
    assert boxes.tolist() == [[5, 8, 11, 12], [10, 10, 11, 11]]
    # at 0.7 * max only the small bright blob is left
    assert wsol.box_from_heatmap(h[0], 0.7).tolist() == [0, 0, 1, 1]


def test_box_from_heatmap_connectivity_threshold_rule_and_empty_maps():
    h = torch.zeros(10, 10)
    h[2, 2] = h[3, 3] = h[4, 4] = 1.0                       # diagonal chain: one 8-connected component
    h[8, 0] = h[8, 1] = 1.0                                 # 2 pixels
    assert wsol.box_from_heatmap(h, 0.5).tolist() == [2, 2, 4, 4]
    g = torch.zeros(6, 6)
    g[1, 1:5] = 0.5                                          # exactly 0.5 * max: not above the threshold
    g[4, 4] = 1.0
    assert wsol.box_from_heatmap(g, 0.5).tolist() == [4, 4, 4, 4]
    assert wsol.box_from_heatmap(g, 0.49).tolist() == [1, 1, 4, 1]
    zero = torch.zeros(3, 8, 8)
    assert wsol.box_from_heatmap(zero, 0.2).tolist() == [[0, 0, 0, 0]] * 3            # paper: wsolevaluation
    assert wsol.box_from_heatmap(zero, 0.2, setting="official").tolist() == [[0, 0, 1, 1]] * 3  # ART code
    assert wsol.box_from_heatmap(g, 1.0).tolist() == [0, 0, 0, 0]                      # nothing above the max


def test_box_from_heatmap_batch_matches_per_image_reference():
    """Batched labelling (one scipy call over the batch) against a plain per-image reference implementation."""
    from scipy import ndimage
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(6, 24, 24, generator=gen)
    maps = torch.nn.functional.avg_pool2d(maps[:, None], 5, 1, 2)[:, 0]   # blobby maps, many components
    for t in (0.3, 0.6, 0.85):
        got = wsol.box_from_heatmap(maps, t)
        for i in range(6):
            m = maps[i].numpy()
            lab, n = ndimage.label(m > t * m.max(), structure=np.ones((3, 3)))
            sizes = [(lab == k).sum() for k in range(1, n + 1)]
            ys, xs = np.nonzero(lab == 1 + int(np.argmax(sizes)))
            assert got[i].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]


def test_box_from_heatmap_official_matches_paper_on_separated_levels():
    h = torch.zeros(2, 12, 12)
    h[:, 2:9, 3:10] = 0.1
    h[:, 4:7, 5:8] = 1.0
    h[1] = h[1] * 3.0 + 2.0                                   # the official rule min-max normalises first
    for t in (0.05, 0.5):
        paper = wsol.box_from_heatmap(h[:1], t)
        official = wsol.box_from_heatmap(h, t, setting="official")
        assert official[0].tolist() == official[1].tolist() == paper[0].tolist()
    assert wsol.box_from_heatmap(h[:1], 0.05).tolist() == [[3, 2, 9, 8]]


@pytest.mark.parametrize("kwargs, match", [(dict(threshold=1.5), "threshold"), (dict(threshold=-0.1), "threshold"),
                                          (dict(threshold=True), "threshold"), (dict(setting="cv2"), "setting")])
def test_box_from_heatmap_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wsol.box_from_heatmap(torch.rand(4, 4), **kwargs)


@pytest.mark.parametrize("bad", [torch.rand(4), torch.rand(1, 1, 4, 4), "map", torch.full((3, 3), float("nan"))])
def test_box_from_heatmap_bad_maps(bad):
    with pytest.raises(ValueError, match="heatmap"):
        wsol.box_from_heatmap(bad)


# ----------------------------------------------------------------------------------------------- post-processing
def test_postprocess_paper_spike_gives_3x3_mean_block():
    g = torch.zeros(2, 3, 9, 9)
    g[0, :, 4, 4] = torch.tensor([-2.0, 1.0, 3.0])           # grayscale = mean |g| over channels
    g[1, 0, 0, 0] = 5.0                                      # a corner spike: zero padding keeps it at 1/9
    heat = wsol.postprocess_heatmap(g)
    assert heat.shape == (2, 9, 9) and heat.dtype == g.dtype
    expect = torch.zeros(9, 9)
    expect[3:6, 3:6] = 1 / 9
    assert torch.allclose(heat[0], expect)
    assert torch.allclose(heat[1, :2, :2], torch.full((2, 2), 1 / 9)) and heat[1].sum().item() == pytest.approx(4 / 9)
    assert wsol.box_from_heatmap(heat[0], 0.5).tolist() == [3, 3, 5, 5]
    assert torch.equal(wsol.postprocess_heatmap(torch.zeros(1, 3, 5, 5)), torch.zeros(1, 5, 5))


def test_postprocess_official_range_smoothing_and_batch_independence():
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(3, 3, 32, 32, generator=gen) * 0.01
    g[0, :, 10:20, 12:22] += 1.0                              # an object-shaped strong region in image 0
    heat = wsol.postprocess_heatmap(g, setting="official")
    assert heat.shape == (3, 32, 32)
    assert heat.amin(dim=(1, 2)).abs().max() < 1e-6 and (heat.amax(dim=(1, 2)) - 1).abs().max() < 1e-6
    # per image: the same map alone or within a batch
    assert torch.allclose(wsol.postprocess_heatmap(g[:1], setting="official"), heat[:1], atol=1e-6)
    # sigma-3 Gaussian: the edge of the object spreads over a much wider band of intermediate values than the
    # paper setting's 3x3 mean filter gives
    paper = wsol.postprocess_heatmap(g[:1], setting="paper")
    band = lambda m: ((m > 0.1 * m.max()) & (m < 0.9 * m.max())).sum().item()  # noqa: E731
    assert band(heat[0]) > 3 * band(paper[0])
    box = wsol.box_from_heatmap(heat[0], 0.5, setting="official")
    assert wsol.iou(box, torch.tensor([12.0, 10, 21, 19])).item() > 0.5


def test_postprocess_and_cam_bad_inputs_and_cam_normalisation():
    with pytest.raises(ValueError, match="setting"):
        wsol.postprocess_heatmap(torch.rand(1, 3, 4, 4), setting="released")
    with pytest.raises(ValueError, match="kernel_size"):
        wsol.postprocess_heatmap(torch.rand(1, 3, 4, 4), kernel_size=2)
    with pytest.raises(ValueError, match="attr"):
        wsol.postprocess_heatmap(torch.rand(4, 4))
    cam = torch.tensor([[[1.0, 3.0], [2.0, 5.0]]]).unsqueeze(1).expand(1, 3, 2, 2)
    assert torch.allclose(wsol.cam_heatmap(cam), torch.tensor([[[0.0, 0.5], [0.25, 1.0]]]))
    assert torch.equal(wsol.cam_heatmap(torch.full((2, 3, 3), 7.0)), torch.zeros(2, 3, 3))  # constant -> zeros


# ------------------------------------------------------------------------------------- localisation metrics
def _fixture():
    """Four images with known boxes: predicted boxes with IoU 1, 0.5, 1/3 and 0; predictions right, right, wrong,
    right."""
    gt = torch.tensor([[0.0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 9]])
    pred = torch.tensor([[0.0, 0, 9, 9], [0, 0, 9, 4], [5, 0, 14, 9], [20, 20, 29, 29]])
    logits = torch.tensor([[3.0, 0, 0], [0, 2, 0], [1, 0, 0], [0, 0, 1]])
    labels = torch.tensor([0, 1, 2, 2])
    return pred, gt, logits, labels


def test_gt_known_top1_loc_and_acc_on_fixture():
    pred, gt, logits, labels = _fixture()
    assert wsol.gt_known_loc(pred, gt).item() == 0.5
    assert wsol.gt_known_loc(pred, gt, reduction="none").tolist() == [True, True, False, False]
    assert wsol.gt_known_loc(pred, gt, iou_threshold=0.3).item() == 0.75
    assert wsol.top1_loc(pred, gt, logits, labels).item() == 0.5
    assert wsol.top1_loc(pred, gt, logits, labels, iou_threshold=0.3).item() == 0.5   # image 2 is misclassified
    assert wsol.top1_loc(pred, gt, logits.argmax(1), labels, reduction="none").tolist() == [True, True, False, False]
    assert wsol.top1_acc(logits, labels).item() == 0.75
    with pytest.raises(ValueError, match="reduction"):
        wsol.gt_known_loc(pred, gt, reduction="sum")
    with pytest.raises(ValueError, match="iou_threshold"):
        wsol.gt_known_loc(pred, gt, iou_threshold=50)
    with pytest.raises(ValueError):
        wsol.top1_loc(pred, gt, logits[:3], labels[:3])


def test_threshold_sweep_finds_the_best_threshold():
    # a weak halo that matches the ground truth around a strong small core: thresholds below the halo's level
    # (0.25 of the max) fit the halo (IoU 1), higher ones only the core (IoU 9/100)
    h = torch.zeros(4, 20, 20)
    h[:, 5:15, 5:15] = 0.25
    h[:, 9:12, 9:12] = 1.0
    gt = torch.tensor([[5.0, 5, 14, 14]] * 4)
    ok = torch.tensor([True, False, True, True])
    res = wsol.threshold_sweep(h, gt, thresholds=[0.1, 0.2, 0.24, 0.25, 0.5], correct=ok)
    assert res["gt_known_loc"].tolist() == [1, 1, 1, 0, 0]
    assert res["top1_loc"].tolist() == [0.75, 0.75, 0.75, 0, 0]
    assert res["best_threshold"] == 0.1 and res["best_gt_known_loc"] == 1 and res["top1_loc_at_best"] == 0.75
    assert res["n"] == 4
    # batch by batch = all at once; no `correct` -> no Top-1 Loc
    sweep = wsol.ThresholdSweep([0.1, 0.2, 0.24, 0.25, 0.5])
    sweep.update(h[:1], gt[:1]).update(h[1:], gt[1:])
    r2 = sweep.result()
    assert r2["gt_known_loc"].tolist() == res["gt_known_loc"].tolist() and r2["top1_loc"] is None
    assert len(wsol.threshold_sweep(h, gt)["thresholds"]) == 100    # default grid 0, 0.01, ..., 0.99
    with pytest.raises(ValueError, match="threshold"):
        wsol.ThresholdSweep([0.5, 2.0])
    with pytest.raises(ValueError, match="gt boxes"):
        wsol.threshold_sweep(h, gt[:2])
    with pytest.raises(ValueError, match="no images"):
        wsol.ThresholdSweep().result()


# ------------------------------------------------------------------------------------------------------- masks
def test_masks_from_boxes_and_heatmaps_and_mask_iou():
    m = wsol.mask_from_box(torch.tensor([[1.0, 0, 2, 1], [0, 0, 0, 0]]), (3, 4))
    assert m.dtype == torch.bool and m.shape == (2, 3, 4)
    assert m[0].int().tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]] and m[1].sum() == 1
    assert wsol.mask_from_box(torch.tensor([-5.0, 2, 99, 2]), 4).sum() == 4            # clipped to the image
    box = torch.tensor([[3.0, 2, 10, 7]])
    assert wsol.mask_from_box(box, 16).sum() == (10 - 3 + 1) * (7 - 2 + 1)          # inclusive area
    h = torch.zeros(2, 8, 8)
    h[:, 1:3, 1:3] = 1.0
    h[:, 5:8, 4:8] = 0.5
    assert wsol.mask_from_heatmap(h, 0.2).sum(dim=(1, 2)).tolist() == [16, 16]
    big = wsol.mask_from_heatmap(h, 0.2, largest_component=True)
    assert big.sum(dim=(1, 2)).tolist() == [12, 12] and big[0, 6, 5]
    assert wsol.mask_from_heatmap(torch.zeros(5, 5)).sum() == 0
    a = torch.zeros(4, 4, dtype=torch.bool)
    a[:2] = True
    full = torch.ones(4, 4, dtype=torch.bool)
    assert wsol.mask_iou(a, full).item() == 0.5
    assert wsol.mask_iou(torch.stack([a, ~a]), a).tolist() == [1.0, 0.0]
    assert wsol.mask_iou(a.int(), full).item() == 0.5                                  # 0/1 integers accepted
    assert wsol.mask_iou(torch.zeros(3, 3, dtype=torch.bool), torch.zeros(3, 3, dtype=torch.bool)).item() == 0
    # a box's mask against the same box: IoU of masks equals the box IoU
    b1, b2 = torch.tensor([2.0, 2, 9, 9]), torch.tensor([5.0, 4, 12, 11])
    assert wsol.mask_iou(wsol.mask_from_box(b1, 16), wsol.mask_from_box(b2, 16)).item() == \
        pytest.approx(wsol.iou(b1, b2).item())


def test_top1_seg_and_mask_bad_inputs():
    gt = torch.zeros(3, 4, 4, dtype=torch.bool)
    gt[:, :2] = True
    pred = torch.stack([gt[0], torch.ones(4, 4, dtype=torch.bool), ~gt[0]])            # IoU 1, 0.5, 0
    assert wsol.top1_seg(pred, gt, torch.tensor([1, 1, 1]), torch.tensor([1, 1, 1])).item() == pytest.approx(2 / 3)
    assert wsol.top1_seg(pred, gt, torch.tensor([1, 0, 1]), torch.tensor([1, 1, 1]),
                         reduction="none").tolist() == [True, False, False]
    with pytest.raises(ValueError, match="boolean"):
        wsol.mask_iou(torch.rand(4, 4), gt[0])
    with pytest.raises(ValueError, match="sizes differ"):
        wsol.mask_iou(gt[0], torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="size"):
        wsol.mask_from_box(torch.tensor([0.0, 0, 1, 1]), (0, 4))
    with pytest.raises(ValueError, match="boxes"):
        wsol.mask_from_box(torch.zeros(2, 3), 4)


# ------------------------------------------------------------------------------- boxes under the CUB transforms
_CUB_ITEMS = [(1, (400, 300), (60, 27, 265, 223)), (2, (256, 256), (10, 100, 20, 30)),
              (3, (300, 500), (0, 0, 300, 500))]


def _write_cub(root, items=_CUB_ITEMS):
    """A CUB_200_2011 folder in the official format: each test image black with a white rectangle at its box."""
    base = root / "CUB_200_2011"
    (base / "images" / "001.A").mkdir(parents=True)
    for i, size, (x, y, w, h) in items:
        img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        img[y:y + h, x:x + w] = 255
        Image.fromarray(img).save(base / "images" / "001.A" / f"a_{i}.png")
    for name, fmt in [("images.txt", "{i} 001.A/a_{i}.png"), ("image_class_labels.txt", "{i} 1"),
                      ("train_test_split.txt", "{i} 0"), ("bounding_boxes.txt", "{i} {x} {y} {w} {h}")]:
        (base / name).write_text("".join(fmt.format(i=i, x=b[0], y=b[1], w=b[2], h=b[3]) + "\n"
                                         for i, _, b in items))


def test_boxes_consistent_under_cub_transforms(tmp_path):
    """A bright rectangle drawn where the CUB box is stays where the loader's transformed box says: the box fitted
    on the transformed image agrees with the transformed ground-truth box (Resize(256, 256) + CenterCrop(224))."""
    _write_cub(tmp_path)
    ds = data.load_dataset("cub200", "test", root=tmp_path)
    for k in range(len(ds)):
        x, _, box = ds[k]
        fitted = wsol.box_from_heatmap(x.mean(0), 0.5)
        assert (fitted - box).abs().max() <= 1, (k, fitted, box)        # resampling blurs edges by <= 1 pixel
        assert wsol.iou(fitted, box).item() > 0.9
        inside = wsol.mask_from_box(box, x.shape[-2:])
        assert x.mean(0)[inside].mean() > 0.9                            # the box covers the bright pixels


# -------------------------------------------------------------------------------------------- Flowers-17 trimaps


def test_flowers17_trimaps_loader_on_fixture(tmp_path):
    ids, truth = write_trimaps(tmp_path)
    ds = wsol.load_flowers17_trimaps(tmp_path)
    assert ds.ids == ids and ds.targets == [0, 1, 16] and len(ds) == 3
    for k, i in enumerate(ids):
        assert np.array_equal(ds.load_mask(k), truth[i])
        x, y, m = ds[k]
        assert x.shape == (3, 128, 128) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        assert m.shape == (128, 128) and m.dtype == torch.bool
        frac = truth[i].mean()
        assert abs(m.float().mean().item() - frac) < 0.03      # nearest resize keeps the foreground share
    x, y, m = wsol.load_flowers17_trimaps(tmp_path, size=64, ids=[81])[0]
    assert x.shape == (3, 64, 64) and m.shape == (64, 64) and y == 1
    assert ds[-1][1] == 16
    with pytest.raises(ValueError, match="no trimap"):
        wsol.load_flowers17_trimaps(tmp_path, ids=[5])
    with pytest.raises(IndexError):
        ds[3]
    (tmp_path / "flowers17" / "trimaps" / "image_0081.png").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="image_0081.png"):
        wsol.load_flowers17_trimaps(tmp_path)
    with pytest.raises(data.DatasetNotFoundError, match="trimaps.tgz"):
        wsol.load_flowers17_trimaps(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------- model-level helpers
def _small_model(num_classes=3):
    torch.manual_seed(0)
    return models.build_model("small-cnn", num_classes)


@pytest.mark.parametrize("method, setting", [("grad", "paper"), ("grad", "official"), ("cam", "paper"),
                                             ("gradcam", "paper")])
def test_localization_map_shapes_modes_and_flags(method, setting):
    model = _small_model()
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    heat = wsol.localization_map(model, x, torch.tensor([0, 2]), method=method, setting=setting)
    assert heat.shape == (2, 32, 32) and heat.min() >= 0 and heat.max() <= 1 and heat.max() > 0
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="method"):
        wsol.localization_map(model, x, 0, method="ig")


def test_evaluate_localization_on_tiny_dataset():
    model = _small_model().eval()
    gen = torch.Generator().manual_seed(3)
    items = [(torch.rand(3, 32, 32, generator=gen), k % 3, torch.tensor([4.0, 4, 20 + k, 24])) for k in range(5)]
    res = wsol.evaluate_localization(model, items, method="grad", batch_size=2, keep=3, progress=False,
                                     thresholds=[0.1, 0.2, 0.5])
    assert res["n"] == 5 and res["threshold"] == 0.2 and res["target"] == "label"
    assert res["gt_known_loc"] == pytest.approx((res["ious"] >= 0.5).float().mean().item())
    assert res["top1_loc"] <= min(res["gt_known_loc"], res["top1_acc"])
    assert torch.allclose(res["ious"], wsol.iou(res["pred_boxes"], res["gt_boxes"]))
    assert res["sweep_gt_known_loc"][1] == pytest.approx(res["gt_known_loc"])   # the sweep at 0.2 = the fixed run
    assert res["images"].shape == (3, 3, 32, 32) and res["heatmaps"].shape == (3, 32, 32)
    assert not model.training
    off = wsol.evaluate_localization(model, items, method="cam", setting="official", thresholds=(), progress=False)
    assert off["threshold"] == 0.1 and "best_threshold" not in off


# ---------------------------------------------------------------------------------------------------- figures
def test_figures_have_the_right_number_of_panels():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    imgs = torch.rand(3, 3, 16, 16)
    heat = torch.rand(3, 16, 16)
    gt = torch.tensor([[1.0, 1, 8, 8]] * 3)
    fig = wsol.plot_localization(imgs, {"ART": heat, "ADL": heat}, gt, {"ART": gt, "ADL": gt + 1},
                                 titles=["a", "b", "c"])
    assert len(fig.axes) == 6
    red = [p for p in fig.axes[0].patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(fig.axes[0].patches) == 2 and len(red) == 1
    plt.close(fig)
    fig = wsol.plot_localization(imgs, heat, gt, gt)
    assert len(fig.axes) == 3
    plt.close(fig)
    masks = {"Natural": heat > 0.5, "ART": heat > 0.3}
    fig = wsol.plot_masks(imgs[:2], {k: v[:2] for k, v in masks.items()}, gt_masks=heat[:2] > 0.4)
    assert len(fig.axes) == 2 * 4 and fig.axes[1].get_title() == "ground truth"
    plt.close(fig)
    with pytest.raises(ValueError, match="keys"):
        wsol.plot_localization(imgs, {"ART": heat}, gt, {"ADL": gt})


# --------------------------------------------------------------------------------------------- real CUB images
def test_real_cub_images_localize(shared_data):
    """End to end on 6 real CUB test images: boxes are valid inclusive corners inside the 224 crop, metrics are
    consistent with the per-image IoUs."""
    ds = data.load_dataset("cub200", "test", subset=6)
    model = models.build_model("small-cnn", 200, models.IMAGENET_MEAN, models.IMAGENET_STD).eval()
    res = wsol.evaluate_localization(model, ds, method="grad", batch_size=6, thresholds=[0.2], progress=False)
    b = res["pred_boxes"]
    assert b.shape == (6, 4) and (b[:, :2] <= b[:, 2:]).all() and b.min() >= 0 and b.max() <= 223
    assert (res["gt_boxes"][:, :2] < res["gt_boxes"][:, 2:]).all()
    assert res["gt_known_loc"] == pytest.approx((res["ious"] >= 0.5).float().mean().item())


# ------------------------------------------------------------------------- small input size (smoke) and box masks
def test_image_size_rescales_cub_images_and_boxes_and_keeps_fingerprints(tmp_path):
    """``TrainConfig.image_size`` (train.input_transform): CUB at 64x64 keeps the 256/224 resize-to-crop ratio, so
    its boxes are the 224 boxes scaled by 64/224 (within the rounding of a pixel) and still cover the drawn
    rectangle; the field is left out of the fingerprint when None (existing run folders stay valid)."""
    from artlib import train
    _write_cub(tmp_path)
    base = train.config("smoke", "cub200", "natural")
    assert "image_size" not in base.trajectory_dict()
    assert train.config("smoke", "cifar10", "natural").fingerprint() == "aff3f81d"
    cfg = train.config("smoke", "cub200", "natural", image_size=64)
    assert cfg.trajectory_dict()["image_size"] == 64 and cfg.fingerprint() != base.fingerprint()
    assert train.input_transform(base, "test") is None
    big = data.load_dataset("cub200", "test", root=tmp_path)
    small = wsol.cub_test_set(cfg, root=tmp_path)
    for k in range(len(big)):
        x, _, box = small[k]
        assert x.shape == (3, 64, 64)
        assert (box - big[k][2] * 64 / 224).abs().max() <= 1.5, (k, box)
        fitted = wsol.box_from_heatmap(x.mean(0), 0.5)
        assert wsol.iou(fitted, box).item() > 0.8
    with pytest.raises(ValueError, match="image_size"):
        train.config("smoke", "cub200", "natural", image_size=0)
    cif = train.config("smoke", "cifar10", "natural", image_size=16)
    assert train.input_transform(cif, "test")(Image.new("RGB", (32, 32))).shape == (3, 16, 16)


def test_box_masks_and_segmentation_sweep(tmp_path):
    _write_cub(tmp_path)
    seg = wsol.box_masks(data.load_dataset("cub200", "test", root=tmp_path))
    x, y, m = seg[0]
    assert len(seg) == 3 and m.dtype == torch.bool and m.shape == x.shape[-2:] and y == 0
    assert (x.mean(0)[m] > 0.9).float().mean() > 0.95                          # the mask is the white rectangle
    gen = torch.Generator().manual_seed(4)
    heat = torch.nn.functional.avg_pool2d(torch.rand(3, 1, 20, 20, generator=gen), 5, 1, 2)[:, 0]
    gt = heat > 0.5
    grid = np.array([0.0, 0.3, 0.6, 0.9])
    for lc in (False, True):
        got = wsol._mask_sweep(heat, gt, grid, lc)
        ref = torch.stack([wsol.mask_iou(wsol.mask_from_heatmap(heat, float(t), lc), gt) for t in grid])
        assert got.shape == (4, 3) and torch.allclose(got, ref)


@pytest.mark.parametrize("method", ["ig", "grad"])
def test_segmentation_map_and_evaluate_segmentation_on_fixture(method):
    model = _small_model()
    model.train()
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 24, 24, generator=gen)
    heat = wsol.segmentation_map(model, x, torch.tensor([0, 1]), method=method, n_steps=8)
    assert heat.shape == (2, 24, 24) and heat.min() >= 0 and heat.max() <= 1 and model.training
    masks = torch.zeros(5, 24, 24, dtype=torch.bool)
    masks[:, 4:18, 6:20] = True
    items = [(torch.rand(3, 24, 24, generator=gen), k % 3, masks[k]) for k in range(5)]
    res = wsol.evaluate_segmentation(model, items, method=method, n_steps=8, batch_size=2, keep=3, progress=False,
                                     thresholds=[0.1, 0.2, 0.5])
    assert res["n"] == 5 and model.training
    hits = (res["ious"] >= 0.5) & res["correct"]
    assert res["top1_seg"] == pytest.approx(hits.float().mean().item())
    assert res["mean_iou"] == pytest.approx(res["ious"].mean().item())
    assert res["sweep_top1_seg"][1] == pytest.approx(res["top1_seg"])          # the sweep at 0.2 = the fixed run
    assert res["sweep_mean_iou"][1] == pytest.approx(res["mean_iou"])
    assert res["best_top1_seg"] == pytest.approx(max(res["sweep_top1_seg"]))
    assert res["masks"].shape == (3, 24, 24) and res["gt_masks"].dtype == torch.bool
    assert torch.equal(res["masks"], wsol.mask_from_heatmap(res["heatmaps"], 0.2))
    with pytest.raises(ValueError, match="method"):
        wsol.segmentation_map(model, x, 0, method="cam")
    with pytest.raises(ValueError, match="masks"):
        wsol.evaluate_segmentation(model, [(x[0], 0, masks[0, :10])], method=method, progress=False)


def test_cub_model_bad_profile():
    with pytest.raises(ValueError, match="profile"):
        wsol.cub_model("official", "art")
