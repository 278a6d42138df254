"""The notebook manifest and the papermill runner behind ``python -m artlib reproduce``.

Every notebook of the package is listed once in :data:`MANIFEST`, in dependency order (training before evaluation),
with the parameters each profile passes to it. ``run`` executes them with papermill, saves each executed notebook
under ``runs/<profile>/``, reports a failing notebook with its failing cell and goes on with the rest.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@dataclass(frozen=True)
class Entry:
    """One notebook: its file name, the parameters per profile, and the figures/tables it writes (under figures/)."""

    notebook: str
    params: dict = field(default_factory=dict)   # {"smoke": {...}, "paper": {...}}
    outputs: tuple = ()
    needs: tuple = ("cifar10:train",)            # "dataset:split" the notebook reads (checked before it runs)

    def parameters(self, profile: str) -> dict:
        return {"profile": profile, **self.params.get(profile, {})}


MANIFEST: tuple[Entry, ...] = (
    Entry("00_data_overview.ipynb", outputs=("data_overview.csv",), needs=()),
    Entry("02_train_art.ipynb", outputs=("train_cifar10_art.png", "train_cifar10_art.csv")),
    Entry("03_art_table1_robustness.ipynb", outputs=("art_table1.png", "art_table1.csv"), needs=("cifar10:train", "gtsrb:train")),
    Entry("04_art_fig3_gradients.ipynb", outputs=("art_fig3_gradients.png", "art_fig3_gradients.csv")),
    Entry("05_art_fig4_generation.ipynb", outputs=("art_fig4_generation.png", "art_fig4_generation.csv")),
    Entry("06_art_table4_fig6_attributions.ipynb", outputs=("art_table4.csv", "art_fig6_cosine.png", "art_fig6_cosine.csv")),
    Entry("07_art_table3_corruptions.ipynb", outputs=("art_table3.png", "art_table3.csv")),
    Entry("20_ineq_table1_gini.ipynb", outputs=("ineq_table1_cifar10.png", "ineq_table1_cifar10.csv")),
    Entry("21_ineq_fig2_attributions.ipynb", outputs=("ineq_fig2_cifar10.png", "ineq_fig5_cifar10.png",
                                                      "ineq_fig5_stats_cifar10.csv")),
    Entry("22_ineq_fig3_noise.ipynb", outputs=("ineq_fig3_cifar10.png", "ineq_fig3_cifar10.csv")),
    Entry("23_ineq_table2_occlusion.ipynb", outputs=("ineq_fig4_cifar10.png", "ineq_table2_cifar10.csv")),
    Entry("24_ineq_table3_attribution_ablation.ipynb", outputs=("ineq_table3_cifar10.png", "ineq_table3_cifar10.csv")),
    Entry("25_ineq_transfer_autoattack.ipynb", outputs=("ineq_table4_cifar10.csv", "ineq_table5_cifar10.png",
                                                        "ineq_table5_cifar10.csv")),
    Entry("26_ineq_l2_and_sparsity.ipynb", outputs=("ineq_a5_a6_cifar10.png", "ineq_a5_a6_cifar10.csv")),
    Entry("27_ineq_class_gini.ipynb", outputs=("ineq_table6_cifar10.png", "ineq_table6_cifar10.csv",
                                               "ineq_table6_topbottom_cifar10.csv")),
    Entry("28_ineq_cutout.ipynb", outputs=("ineq_table8_cifar10.png", "ineq_table8_cifar10.csv")),
)


def get_model(profile: str = "smoke", dataset: str = "cifar10", method: str = "natural", *, progress: bool = False,
              **overrides):
    """The model a notebook needs, from the checkpoint cache, else trained now with :func:`artlib.train.train`.

    The cache is the run folder of the training config (``runs/<name>_<config hash>/``): two notebooks asking for the
    same ``(profile, dataset, method, overrides)`` share one checkpoint, a finished run is loaded instead of
    retrained, and an interrupted one resumes. Notebooks never copy training code; they call this.

    Args:
        profile: ``"smoke"`` or ``"paper"`` (the training settings of :func:`artlib.train.config`).
        dataset, method: as in :func:`artlib.train.config` (e.g. ``"cifar10"``, ``"art"``).
        progress: show tqdm bars while training.
        **overrides: any :class:`artlib.train.TrainConfig` field (``arch``, ``eps``, ``lam``, ``epochs`` ...).

    Returns:
        ``(model, result)``: the model in eval mode and the :class:`artlib.train.TrainResult` (log, run_dir, config).

    Example:
        >>> model, result = get_model("smoke", "cifar10", "pgd", eps=4/255)
    """
    from artlib import train

    cfg = train.config(profile, dataset, method, progress=progress, **overrides)
    result = train.train(cfg)
    return result.model.eval(), result


def missing_data(entry: Entry) -> list[str]:
    """The ``dataset:split`` pairs of ``entry.needs`` that the data root does not hold."""
    from artlib import data

    missing = []
    for need in entry.needs:
        name, split = need.split(":")
        try:
            data.load_dataset(name, split)
        except data.DatasetNotFoundError:
            missing.append(need)
    return missing


def select(only: str | None = None) -> list[Entry]:
    """Manifest entries whose notebook name contains ``only`` (all when None); ValueError when none match."""
    entries = [e for e in MANIFEST if only is None or only in e.notebook]
    if not entries:
        raise ValueError(f"--only {only!r} matches no notebook; choices: {[e.notebook for e in MANIFEST]}")
    return entries


def run(profile: str = "smoke", only: str | None = None, out: str | Path | None = None, jobs: int = 1) -> int:
    """Execute the selected notebooks with papermill; return 0 when all succeed, 1 otherwise.

    Args:
        profile: ``"smoke"`` (small real subsets, CPU) or ``"paper"`` (the papers' settings, GPU).
            Notebooks whose ``needs`` are missing from the data root are skipped with the download command.
        only: substring filter on notebook names.
        out: folder for executed notebooks (default ``runs/<profile>``).
        jobs: accepted for the command line; notebooks run one after another (they share the CPU).
    """
    import papermill as pm

    from artlib import data

    if profile not in ("smoke", "paper"):
        raise ValueError(f"unknown profile {profile!r}; choices: ['smoke', 'paper']")
    out_dir = Path(out) if out else ROOT / "runs" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    # Notebooks run with cwd=notebooks/: pin the data root to an absolute path so a relative default (./data) or a
    # relative $ARTLIB_DATA means the same folder inside the kernels as here.
    os.environ[data.DATA_ENV] = str(data.resolve_root().resolve())
    failures, skipped = [], []
    for entry in select(only):
        lacking = missing_data(entry)
        if lacking:  # e.g. a fresh machine with only the foolbox test images: say so, run the rest
            skipped.append(entry.notebook)
            hint = "; ".join(f"python -m artlib data download {n.split(':')[0]}" for n in lacking)
            print(f"skip   {entry.notebook}: needs {', '.join(lacking)} under {data.resolve_root()} ({hint})")
            continue
        start = time.time()
        target = out_dir / entry.notebook
        try:
            pm.execute_notebook(str(NOTEBOOKS / entry.notebook), str(target), parameters=entry.parameters(profile),
                                cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
        except pm.PapermillExecutionError as exc:
            failures.append(entry.notebook)
            print(f"FAILED {entry.notebook} at cell {exc.exec_count}: {exc.ename}: {exc.evalue}  (see {target})")
            continue
        print(f"ok     {entry.notebook}  {time.time() - start:6.1f} s  -> {target}")
    if skipped:
        print(f"{len(skipped)} skipped for missing data: {skipped}")
    print(f"{len(failures)} failed: {failures}" if failures else "no notebook failed")
    return 1 if failures else 0
