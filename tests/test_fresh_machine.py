"""A fresh machine: the data root holds only the 20 real CIFAR-10 test images of the foolbox wheel
(what ``python -m artlib data ensure`` leaves on an offline machine). The notebooks that only evaluate the zoo's models on test images must run
there (on the zoo and those 20 images) instead of being skipped; the ones that train or read train images are
skipped with the download command."""
import pytest

from artlib import data, evaluate, inequality as ineq, reproduce


@pytest.fixture
def fresh_root(shared_data, tmp_path, monkeypatch):
    """A data root with only ``foolbox-samples/`` (a link to the shared data's), an empty checkpoint cache and a
    figures folder under ``tmp_path``."""
    fool = shared_data / "foolbox-samples"
    if not sorted(fool.glob("cifar10_*.png")):
        pytest.skip(f"no foolbox CIFAR-10 test images under {fool}")
    root = tmp_path / "data"
    root.mkdir()
    (root / "foolbox-samples").symlink_to(fool.resolve(), target_is_directory=True)
    monkeypatch.setenv("ARTLIB_DATA", str(root))
    monkeypatch.setenv("ARTLIB_RUNS", str(tmp_path / "cache"))       # nothing smoke-trained before
    monkeypatch.setenv("ARTLIB_FIGURES", str(tmp_path / "figures"))
    return root


def test_fresh_machine_has_only_the_foolbox_test_split(fresh_root):
    ds = data.load_dataset("cifar10", "test")
    assert ds.source == "foolbox-samples" and len(ds) == 20
    assert reproduce.has_split("cifar10", "test") and not reproduce.has_split("cifar10", "train")


def test_test_only_notebooks_are_runnable_on_a_fresh_machine(fresh_root):
    runnable = {e.notebook for e in reproduce.MANIFEST if not reproduce.missing_data(e)}
    test_only = {e.notebook for e in reproduce.MANIFEST if e.needs == reproduce.TEST_ONLY}
    assert test_only <= runnable
    for name in ("04_art_fig3_gradients.ipynb", "20_ineq_table1_gini.ipynb", "30_bridge_art_inequality.ipynb"):
        assert name in test_only
    by_name = {e.notebook: e for e in reproduce.MANIFEST}
    # training / train images: still skipped
    assert reproduce.missing_data(by_name["02_train_art.ipynb"]) == ["cifar10:train"]
    assert reproduce.missing_data(by_name["05_art_fig4_generation.ipynb"]) == ["cifar10:train"]


def test_image_loaders_give_what_a_small_split_holds(fresh_root):
    x, y = evaluate.load_images("cifar10", 320)              # notebook 30's reference n_attack
    assert x.shape == (20, 3, 32, 32) and len(y) == 20
    x5, y5 = evaluate.load_images("cifar10", 5)               # fewer than the split: still the stratified pick
    assert len(y5) == 5 and len(set(y5.tolist())) == 5
    xp, yp = ineq.eval_images("cifar10", 3000)                # a reference pool
    assert len(yp) == 20
    with pytest.raises(ValueError):
        evaluate.load_images("cifar10", 0)


def test_expected_images_is_exact_on_the_full_pool():
    assert ineq.expected_images(500, 3000, 3000, 498) == 500   # full pool: the check still asks for all 500
    assert ineq.expected_images(500, 3000, 20, 12) == 12       # 20 images: what they offer
    assert ineq.expected_images(8, 3000, 20, 12) == 8


def test_keep_obtainable_leaves_out_what_neither_the_zoo_nor_the_data_root_gives(fresh_root, capsys):
    spec = lambda item: item                                    # noqa: E731
    items = [("natural", {}), ("natural", {"seed": 12345})]      # the zoo holds natural seed 0, never seed 12345
    assert reproduce.keep_obtainable("smoke", "cifar10", items, spec=spec) == items[:1]
    out = capsys.readouterr().out
    assert out.startswith("left out (not in the zoo") and "12345" in out and out.count("\n") == 1


def test_a_test_only_notebook_runs_end_to_end_on_a_fresh_machine(fresh_root, tmp_path, capsys):
    assert reproduce.run(profile="smoke", only="20_ineq", out=tmp_path / "runs") == 0
    out = capsys.readouterr().out
    assert "ok     20_ineq_table1_gini.ipynb" in out and "skip" not in out
    assert (tmp_path / "figures" / "ineq_table1_cifar10.csv").is_file()
    assert (tmp_path / "runs" / "20_ineq_table1_gini.ipynb").is_file()


def test_recorded_accuracy_is_compared_only_on_the_recorded_test_split(fresh_root):
    """A zoo model's per-image record refers to the shared 10k test split: on the 20 foolbox images the notebooks'
    check says it does not compare (instead of failing on other images), and the record is not consulted."""
    from artlib import checks, zoo
    assert not zoo.same_test_split("cifar10-natural-s0")
    c = checks.Checks()
    c.at_recorded_accuracy("natural", "cifar10-natural-s0", 0.123, [0, 1])
    assert c.passed == ["natural: the data root's test split is not the one recorded (accuracy not compared)"]
