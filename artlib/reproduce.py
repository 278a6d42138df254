"""The notebook manifest and the papermill runner behind ``python -m artlib reproduce``.

Every notebook of the package is listed once in :data:`MANIFEST` with the parameters each profile passes to it, the
data it reads and the figures/tables it writes. :func:`run` executes the selected notebooks with papermill:

- **dependency order**: by :data:`STAGES` (data, then training, then evaluation, then the explorers, then the
  scorecard that reads every table), manifest order within a stage; with ``jobs > 1`` notebooks of one stage run
  side by side and a stage starts when the previous one has finished;
- each executed notebook is saved as ``<out>/<notebook>`` (default ``runs/<profile>/``); a failing notebook is
  reported with its failing cell and the others go on;
- **up to date**: after a notebook succeeds, ``<out>/<name>.state.json`` records the sha256 of the notebook source,
  its parameters, the sha256 of the artlib package sources, the sha256 of every checkpoint it used or produced
  (run folders of the cache, recorded through :mod:`artlib.cache`) and, for a notebook that reads other notebooks'
  tables (``Entry.reads``: the scorecard), of those tables. A later run skips the notebook while all of
  these are unchanged and its executed notebook and outputs exist; ``force=True`` reruns it anyway;
- **resume after a kill**: the state file is written atomically and only after success, so a killed run re-executes
  just the notebook it was in (whose training, in turn, resumes from its last checkpoint) and skips the finished ones.

The checkpoint cache is :func:`get_model` (``runs/<name>_<config hash>/``, shared by every notebook), guarded by a
file lock per run folder (:func:`artlib.cache.run_lock`), so concurrent notebooks never corrupt it.

Example::

    python -m artlib reproduce --profile smoke                  # everything; a second call skips what is up to date
    python -m artlib reproduce --profile smoke --only ineq --jobs 2
    python -m artlib reproduce --profile paper --only 02_ --force
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from artlib import data, dryrun

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PACKAGE = Path(__file__).resolve().parent
#: Execution order of the manifest's stages; within a stage, manifest order.
STAGES = ("data", "train", "evaluate", "explore", "summary")
STATE_SUFFIX = ".state.json"
#: Per-cell time limit (seconds) by profile when ``run(cell_timeout=None)``: a hung kernel on the smoke profile is
#: reported as a failure instead of blocking the run; paper-profile cells (training) may take days.
CELL_TIMEOUT = {"smoke": 1800, "reference": 3600, "paper": None}


@dataclass(frozen=True)
class Entry:
    """One notebook of the manifest.

    Attributes:
        notebook: file name under ``notebooks/``.
        params: extra papermill parameters per profile, ``{"smoke": {...}, "paper": {...}}`` (``profile`` is always
            passed).
        outputs: the figures/tables it writes, relative to ``figures/`` (checked after it runs; a missing one makes
            the next run execute it again).
        needs: ``"dataset:split"`` pairs it reads; when the data root lacks one the notebook is skipped with the
            download command. A notebook that evaluates the zoo's models needs only the test split
            (:data:`TEST_ONLY`): a model the zoo lacks it trains when the train split is there, else leaves out
            (:func:`keep_obtainable`); one that trains or reads train images needs ``"<dataset>:train"``.
        paper_needs: further ``needs`` of the ``paper`` profile only (e.g. Table 1's SVHN and Flowers-17, Table 3's
            CIFAR-10-C, the ImageNet val images of notebooks 21-27); ``"flowers17-trimaps"`` (no split) is the
            Flowers-17 segmentation release. :func:`profile_datasets` gathers them for ``data ensure``.
        stage: one of :data:`STAGES` (``"evaluate"`` unless it trains for others, reads other notebooks' outputs,
            ...); decides the execution order.
        reads: glob patterns under ``figures/`` of other notebooks' outputs it reads (e.g. the scorecard's
            ``"*.csv"``); their contents are part of its up-to-date hash (its own ``outputs`` excluded).
    """

    notebook: str
    params: dict = field(default_factory=dict)   # {"smoke": {...}, "paper": {...}}
    outputs: tuple = ()
    needs: tuple = ("cifar10:train",)            # "dataset:split" the notebook reads (checked before it runs)
    paper_needs: tuple = ()                      # further needs of the paper profile
    stage: str = "evaluate"                      # see STAGES
    reads: tuple = ()                            # globs under figures/ whose contents it depends on

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"Entry {self.notebook!r}: unknown stage {self.stage!r}; choices: {list(STAGES)}")

    def needs_for(self, profile: str | None = None) -> tuple:
        """``needs``, plus ``paper_needs`` for the paper profile."""
        return self.needs + (self.paper_needs if profile == "paper" else ())

    def parameters(self, profile: str) -> dict:
        return {"profile": profile, **self.params.get(profile, {})}

    @property
    def name(self) -> str:
        """The notebook's file name without ``.ipynb`` (used for its state and log files)."""
        return self.notebook[:-len(".ipynb")] if self.notebook.endswith(".ipynb") else self.notebook


#: The ``needs`` of a notebook that evaluates models on CIFAR-10 test images: the zoo's models, and a model the zoo
#: lacks trained only when the data root holds the train split, else left out with a note
#: (:func:`keep_obtainable`), so a fresh machine with just the foolbox test images runs it.
TEST_ONLY = ("cifar10:test",)

MANIFEST: tuple[Entry, ...] = (
    Entry("00_data_overview.ipynb", outputs=("data_overview.csv",), needs=(), stage="data"),
    Entry("02_train_art.ipynb", outputs=("train_cifar10_art.png", "train_cifar10_art.csv"), stage="train"),
    Entry("03_art_table1_robustness.ipynb", outputs=("art_table1.png", "art_table1.csv"), needs=("cifar10:train", "gtsrb:train"),
          paper_needs=("gtsrb:test", "svhn:train", "svhn:test", "flowers17:train", "flowers17:test")),
    Entry("04_art_fig3_gradients.ipynb", outputs=("art_fig3_gradients.png", "art_fig3_gradients.csv"), needs=TEST_ONLY),
    Entry("05_art_fig4_generation.ipynb", outputs=("art_fig4_generation.png", "art_fig4_generation.csv")),
    Entry("06_art_table4_fig6_attributions.ipynb", outputs=("art_table4.csv", "art_fig6_cosine.png",
                                                            "art_fig6_cosine.csv"), needs=TEST_ONLY),
    Entry("07_art_table3_corruptions.ipynb", outputs=("art_table3.png", "art_table3.csv"), needs=TEST_ONLY,
          paper_needs=("cifar10c:test",)),
    Entry("08_art_sec5_targeted.ipynb", outputs=("art_sec5_targeted.csv", "art_fig10_targeted.png"), needs=TEST_ONLY),
    Entry("09_art_adversarial_extras.ipynb", outputs=("art_sec5_attacks.csv", "art_fig14.png", "art_fig14.csv",
                                                      "art_table6.csv"), needs=TEST_ONLY),
    Entry("10_art_table5_loss_ablation.ipynb", outputs=("art_table5.png", "art_table5.csv"), needs=TEST_ONLY),
    Entry("11_art_fig8_9_hyperparameters.ipynb", outputs=("art_fig8_9_hyperparameters.png",
                                                          "art_fig8_9_hyperparameters.csv"), needs=TEST_ONLY),
    Entry("12_art_fig11_12_distributions.ipynb", outputs=("art_fig11_boxplot.png", "art_fig11_boxplot.csv",
                                                          "art_fig12_eps.png", "art_fig12_eps.csv"), needs=TEST_ONLY),
    Entry("13_art_table2_cub_wsol.ipynb", outputs=("art_table2_cub_wsol.csv", "art_table2_cub_wsol.png",
                                                   "art_fig5_cub_boxes.png", "art_fig13_cub_art_boxes.png"),
          needs=("cub200:train", "cub200:test")),
    Entry("14_art_fig7_segmentation.ipynb", outputs=("art_fig7_segmentation.csv", "art_fig7_segmentation.png",
                                                     "art_fig7_segmentation_masks.png"),
          needs=("cub200:train", "cub200:test"), paper_needs=("flowers17:train", "flowers17-trimaps")),
    Entry("20_ineq_table1_gini.ipynb", outputs=("ineq_table1_cifar10.png", "ineq_table1_cifar10.csv",
                                                "ineq_table1_settings_cifar10.csv"), needs=TEST_ONLY),
    Entry("21_ineq_fig2_attributions.ipynb", outputs=("ineq_fig2_cifar10.png", "ineq_fig5_cifar10.png",
                                                      "ineq_fig5_stats_cifar10.csv"), needs=TEST_ONLY, paper_needs=("imagenet:val",)),
    Entry("22_ineq_fig3_noise.ipynb", outputs=("ineq_fig3_cifar10.png", "ineq_fig3_cifar10.csv",
                                               "ineq_fig3_settings_cifar10.csv"), needs=TEST_ONLY, paper_needs=("imagenet:val",)),
    Entry("23_ineq_table2_occlusion.ipynb", outputs=("ineq_fig4_cifar10.png", "ineq_table2_cifar10.csv",
                                                     "ineq_table2_settings_cifar10.csv"), needs=TEST_ONLY, paper_needs=("imagenet:val",)),
    Entry("24_ineq_table3_attribution_ablation.ipynb", outputs=("ineq_table3_cifar10.png", "ineq_table3_cifar10.csv"),
          needs=TEST_ONLY, paper_needs=("imagenet:val",)),
    Entry("25_ineq_transfer_autoattack.ipynb", outputs=("ineq_table4_cifar10.csv", "ineq_table5_cifar10.png",
                                                        "ineq_table5_cifar10.csv"), needs=TEST_ONLY, paper_needs=("imagenet:val",)),
    Entry("26_ineq_l2_and_sparsity.ipynb", outputs=("ineq_a5_a6_cifar10.png", "ineq_a5_a6_cifar10.csv"),
          needs=TEST_ONLY, paper_needs=("imagenet:val",)),
    Entry("27_ineq_class_gini.ipynb", outputs=("ineq_table6_cifar10.png", "ineq_table6_cifar10.csv",
                                               "ineq_table6_topbottom_cifar10.csv"), needs=TEST_ONLY, paper_needs=("imagenet:val",)),
    Entry("28_ineq_cutout.ipynb", outputs=("ineq_table8_cifar10.png", "ineq_table8_cifar10.csv"), needs=TEST_ONLY),
    Entry("30_bridge_art_inequality.ipynb", outputs=("bridge_art_inequality.png", "bridge_art_inequality.csv",
                                                     "bridge_art_inequality_seeds.csv",
                                                     "bridge_art_inequality_paired.csv"), needs=TEST_ONLY),
    Entry("40_explore_attributions.ipynb", outputs=(), needs=TEST_ONLY, stage="explore"),
    Entry("41_explore_occlusion_noise.ipynb", outputs=(), needs=TEST_ONLY, stage="explore"),
    Entry("98_claims.ipynb", outputs=("claims.csv", "claims.md", "claims_dropped.md", "claims.png"), needs=(),
          stage="summary", reads=("*.csv", "samples/*.csv")),
    Entry("99_scorecard.ipynb", outputs=("scorecard.csv", "scorecard.md", "scorecard.png", "scorecard_summary.csv",
                                         "scorecard_settings.csv"),
          needs=(), stage="summary", reads=("*.csv",)),
)


#: Notebook profiles: ``smoke`` (CI: the zoo's models on few images), ``reference`` (the zoo's models with the papers'
#: attack settings scaled to 2 CPU cores, wall time in benchmarks/results/reference.md), ``paper`` (the papers'
#: models, GPU).
PROFILES = ("smoke", "reference", "paper")
#: The training profile (:func:`artlib.train.config`) whose models each notebook profile evaluates.
MODEL_PROFILE = {"smoke": "reference", "reference": "reference", "paper": "paper", "official": "official"}


def get_model(profile: str = "smoke", dataset: str = "cifar10", method: str = "natural", *, progress: bool = False,
              **overrides):
    """The model a notebook needs: from the reference zoo, else from the checkpoint cache, else trained now.

    ``smoke`` and ``reference`` evaluate the zoo's learned models (:mod:`artlib.zoo`): the request is the
    ``reference`` training config ``train.config("reference", dataset, method, **overrides)``, and when the zoo holds
    a model of that config (same trajectory fields and epochs) its committed weights are loaded (sha256-checked,
    ``weights_only``), nothing is trained. A config the zoo does not hold is trained through the checkpoint cache:
    with the ``reference`` config on the ``reference`` profile, with the ``smoke`` training profile (seconds on a
    CPU, below chance for most methods: a pipeline check, not a result) on the ``smoke`` profile.

    The cache is the run folder of the training config (``runs/<name>_<config hash>/``): two notebooks asking for the
    same ``(profile, dataset, method, overrides)`` share one checkpoint, a finished run is loaded instead of
    retrained, and an interrupted one resumes. Training holds the run folder's file lock
    (:func:`artlib.cache.run_lock`): a second process asking for the same model waits, then loads it.

    Args:
        profile: ``"smoke"``, ``"reference"``, ``"paper"`` (or the training profile ``"official"``).
        dataset, method: as in :func:`artlib.train.config` (e.g. ``"cifar10"``, ``"art"``).
        progress: show tqdm bars while training.
        **overrides: any :class:`artlib.train.TrainConfig` field (``arch``, ``eps``, ``lam``, ``seed`` ...).

    Returns:
        ``(model, result)``: the model in eval mode and a :class:`artlib.train.TrainResult` (log, config; for a zoo
        model ``run_dir`` is the zoo folder and ``checkpoint`` its file).

    Example:
        >>> model, result = get_model("reference", "cifar10", "pgd", eps=4/255)    # zoo entry cifar10-pgd-linf4-s0
    """
    from artlib import cache, train, zoo

    if profile not in MODEL_PROFILE:
        raise ValueError(f"unknown profile {profile!r}; choices: {', '.join(map(repr, PROFILES))}")
    train_profile = MODEL_PROFILE[profile]
    cfg = train.config(train_profile, dataset, method, progress=progress, **overrides)
    name = zoo.match(cfg) if train_profile == "reference" else None
    if name is not None:
        e = zoo.entry(name)
        model = zoo.load(name)
        cache.record_use(e["path"])
        path = Path(e["path"])
        log = (e.get("provenance") or {}).get("log") or []
        return model, train.TrainResult(model=model, config=e["config"], log=log, steps=[], run_dir=path.parent,
                                        checkpoint=path, model_path=path, resumed_from=None, completed=True)
    if profile == "smoke":
        cfg = train.config("smoke", dataset, method, progress=progress, **overrides)
    result = train.train(cfg)
    return result.model.eval(), result


def zoo_name(profile: str, dataset: str, method: str, **overrides) -> Optional[str]:
    """The zoo entry :func:`get_model` loads for this request, or None when it would train (or on ``paper``)."""
    from artlib import train, zoo
    if MODEL_PROFILE.get(profile) != "reference":
        return None
    return zoo.match(train.config("reference", dataset, method, **overrides))


_FOUND_SPLITS: set = set()  # (dataset, split, data root) found by has_split in this process


def has_split(dataset: str, split: str) -> bool:
    """Whether the data root (``$ARTLIB_DATA``) holds ``split`` of ``dataset`` (any source of its loader: a fresh
    machine's foolbox samples count as the CIFAR-10 test split). A split found once is remembered for the process
    (listing a large split takes seconds); a missing one is looked for again on every call."""
    from artlib import data
    key = (dataset, split, str(data.resolve_root().resolve()))
    if key in _FOUND_SPLITS:
        return True
    try:
        data.load_dataset(dataset, split)
    except data.DatasetNotFoundError:
        return False
    _FOUND_SPLITS.add(key)
    return True


def obtainable(profile: str, dataset: str, method: str, **overrides) -> bool:
    """Whether :func:`get_model` can deliver this model here: the zoo holds it (smoke / reference), or the data root
    holds the ``train`` split to train it (the smoke-trained fallback, or the paper profile's training)."""
    return zoo_name(profile, dataset, method, **overrides) is not None or has_split(dataset, "train")


def keep_obtainable(profile: str, dataset: str, items: Sequence, spec=None) -> list:
    """The ``items`` whose model :func:`get_model` can deliver here (:func:`obtainable`), in their order; prints one
    line naming the others.

    A notebook that evaluates zoo models on test images calls this before building its models: on a data root
    without the train split (a fresh machine with the foolbox test images) a model the zoo lacks is left out with a
    note instead of failing in training; with the train split nothing is left out. As the zoo grows, fewer are.

    Args:
        profile, dataset: as in :func:`get_model`.
        items: the notebook's models (method names, labels, ``(label, seed)`` pairs ...).
        spec: ``item -> (method, overrides)`` (default: the item is the method, no overrides).

    Example:
        >>> methods = keep_obtainable(profile, "cifar10", ["natural", "pgd", "art"])
    """
    from artlib import data

    spec = spec or (lambda item: (item, {}))
    kept, left = [], []
    for item in items:
        method, overrides = spec(item)
        (kept if obtainable(profile, dataset, method, **overrides) else left).append(item)
    if left:
        print(f"left out (not in the zoo, and no {dataset} train split under {data.resolve_root()} to train them): "
              f"{left}")
    return kept


def missing_data(entry: Entry, profile: str | None = None) -> list[str]:
    """The needs of ``entry`` under ``profile`` (:meth:`Entry.needs_for`) that the data root does not hold."""
    return [need for need in entry.needs_for(profile)
            if not (has_split(*need.split(":")) if ":" in need else data.available(need))]


def profile_datasets(profile: str, manifest: Sequence[Entry] | None = None) -> list[str]:
    """The datasets the notebooks of ``profile`` read, in manifest order, each once (``data ensure`` gets them)."""
    manifest = MANIFEST if manifest is None else manifest
    return list(dict.fromkeys(need.split(":")[0] for e in manifest for need in e.needs_for(profile)))


def select(only: str | None = None, manifest: Sequence[Entry] | None = None) -> list[Entry]:
    """Manifest entries whose notebook name contains ``only`` (or matches it as a glob such as ``"2?_ineq*"``), all
    when None, ordered by :data:`STAGES` then manifest order; ValueError when none match."""
    manifest = MANIFEST if manifest is None else tuple(manifest)
    entries = [e for e in manifest if only is None or only in e.notebook or fnmatch.fnmatch(e.notebook, only)]
    if not entries:
        raise ValueError(f"--only {only!r} matches no notebook; choices: {[e.notebook for e in manifest]}")
    return sorted(entries, key=lambda e: STAGES.index(e.stage))  # stable: manifest order within a stage


# ----------------------------------------------------------------------------------------------------------------------
# What makes an executed notebook up to date
# ----------------------------------------------------------------------------------------------------------------------
def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_hash(package: str | os.PathLike = PACKAGE) -> str:
    """sha256 over the artlib sources (``*.py``, ``*.yaml``, ``*.txt``, by relative path and content): any change
    to the library makes every notebook out of date."""
    h = hashlib.sha256()
    package = Path(package)
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml", ".txt") and p.is_file()
                       and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(package)).encode() + b"\0")
        h.update(_sha256_bytes(path.read_bytes()).encode() + b"\n")
    return h.hexdigest()


def notebook_hash(path: str | os.PathLike) -> str:
    """sha256 of a notebook's source: cell types, sources and tags (not its stored outputs, execution metadata or
    papermill's ``injected-parameters`` cell, which executing it in place rewrites)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [(c.get("cell_type"), "".join(c.get("source", "")), sorted(c.get("metadata", {}).get("tags", [])))
             for c in nb.get("cells", []) if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    return _sha256_bytes(json.dumps(cells, sort_keys=True).encode())


def state_path(entry: Entry, out_dir: str | os.PathLike) -> Path:
    """``<out>/<notebook name>.state.json``: what the last successful execution of ``entry`` depended on."""
    return Path(out_dir) / (entry.name + STATE_SUFFIX)


def reads_hash(entry: Entry, figures: str | os.PathLike | None = None) -> Optional[str]:
    """sha256 over the files under ``figures/`` matching ``entry.reads`` (names and contents; the entry's own
    outputs excluded); None when it reads none."""
    from artlib import plots

    if not entry.reads:
        return None
    folder = Path(figures) if figures else plots.figures_dir()
    files = sorted({p for pattern in entry.reads for p in folder.glob(pattern) if p.is_file()
                    and p.name not in entry.outputs})
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + _sha256_bytes(path.read_bytes()).encode() + b"\n")
    return h.hexdigest()


def _key(entry: Entry, profile: str, notebooks: Path, artlib_sha: str, figures=None) -> dict:
    return {"notebook_sha256": notebook_hash(notebooks / entry.notebook),
            "parameters": json.loads(json.dumps(entry.parameters(profile), sort_keys=True, default=str)),
            "artlib_sha256": artlib_sha, "reads_sha256": reads_hash(entry, figures)}


def up_to_date(entry: Entry, profile: str, out_dir: str | os.PathLike, *, notebooks: str | os.PathLike = NOTEBOOKS,
               artlib_sha: Optional[str] = None, figures: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether ``entry``'s last successful execution is still valid, and why not.

    Valid when its state file exists and records the same notebook source, parameters, artlib sources and
    checkpoint hashes as now, and the executed notebook and every output exist.

    Returns:
        ``(True, "up to date")`` or ``(False, reason)`` (e.g. ``"notebook changed"``, ``"checkpoint ... changed"``).
    """
    from artlib import cache, plots

    path = state_path(entry, out_dir)
    if not path.is_file():
        return False, "never ran"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False, "state file unreadable"
    now = _key(entry, profile, Path(notebooks), artlib_sha or package_hash(), figures)
    for k, what in (("notebook_sha256", "notebook changed"), ("parameters", "parameters changed"),
                    ("artlib_sha256", "artlib sources changed"), ("reads_sha256", "tables it reads changed")):
        if state.get(k) != now[k]:
            return False, what
    for run_dir, sha in state.get("checkpoints", {}).items():
        if cache.checkpoint_hash(ROOT / run_dir) != sha:  # (relative to the repository, or absolute)
            return False, f"checkpoint {Path(run_dir).name} changed or is missing"
    if not (Path(out_dir) / entry.notebook).is_file():
        return False, "executed notebook missing"
    fig_dir = Path(figures) if figures else plots.figures_dir()
    lacking = [o for o in entry.outputs if not (fig_dir / o).is_file()]
    if lacking:
        return False, f"output missing: {', '.join(lacking)}"
    return True, "up to date"


def _portable(path: str) -> str:
    """``path`` relative to the repository when inside it (a moved checkout keeps valid state files)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _write_state(entry: Entry, profile: str, out_dir: Path, key: dict, checkpoints: dict, seconds: float) -> Path:
    from artlib.checkpoints import atomic_write

    checkpoints = {_portable(run_dir): sha for run_dir, sha in checkpoints.items()}
    state = {"notebook": entry.notebook, "profile": profile, **key, "checkpoints": checkpoints,
             "outputs": list(entry.outputs), "executed": entry.notebook, "seconds": round(seconds, 1),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = json.dumps(state, indent=2, sort_keys=True) + "\n"
    return atomic_write(state_path(entry, out_dir), lambda f: f.write(text.encode()))


# ----------------------------------------------------------------------------------------------------------------------
# Execution
# ----------------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def notebook_error(exc: BaseException) -> str:
    """One line for a failed notebook run: the cell, its first line of code and the exception's first line.

    papermill's :class:`~papermill.exceptions.PapermillExecutionError` carries the kernel's whole traceback (~55 lines
    for one bad parameter); this keeps what a user acts on. Other exceptions (a kernel that died, a broken file)
    give their type and first line.

    Example:
        >>> notebook_error(exc)
        "at cell 3 line 11 ('cfg = train.config(profile, dataset, method, ...'): ValueError: eps must be in ..."
    """
    import papermill as pm

    if isinstance(exc, pm.PapermillExecutionError):
        lines = (exc.source or "").splitlines()
        # the failing line of the cell, from the kernel's traceback ("Cell In[3], line 11"), else its first code line
        frames = [re.search(r"Cell In\[\d+\], line (\d+)", re.sub(r"\x1b\[[0-9;]*m", "", t))
                  for t in exc.traceback or []]
        at = next((int(m.group(1)) for m in frames if m and 0 < int(m.group(1)) <= len(lines)), None)
        first = lines[at - 1] if at else next((ln for ln in lines if ln.strip() and not ln.startswith("#")), "")
        where = f"at cell {exc.exec_count}" + (f" line {at}" if at else "")
        value = str(exc.evalue).strip().splitlines()[0] if str(exc.evalue or "").strip() else ""
        return f"{where} ({first.strip()[:60]!r}): {exc.ename}: {value}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def execute_notebook(source: str | os.PathLike, target: str | os.PathLike, parameters: Optional[dict] = None, *,
                     cwd: str | os.PathLike | None = None, kernel: str = "python3", timeout: Optional[int] = None,
                     progress: bool = False) -> None:
    """Execute one notebook with papermill after checking ``parameters`` against its ``parameters`` cell.

    A misspelt name (``-p epoch 1`` for ``epochs``) raises one ``ValueError`` before anything runs, where papermill
    would only warn and run the default (:func:`artlib.params.check_parameters`). ``cwd`` defaults to the
    notebook's folder (the notebooks read ``../figures`` relative to it).

    Raises:
        ValueError: an unknown parameter, or ``source`` is not a notebook with a ``parameters`` cell.
        papermill.PapermillExecutionError: a cell raised (:func:`notebook_error` makes it one line).
    """
    import papermill as pm

    from artlib import params

    source = Path(source)
    given = params.check_parameters(dict(parameters or {}), params.declared_parameters(source), where=str(source))
    pm.execute_notebook(str(source), str(target), parameters=given, cwd=str(cwd or source.parent),
                        progress_bar=progress, kernel_name=kernel, execution_timeout=timeout)


def _execute(job: dict) -> dict:
    """Run one notebook with papermill (in this process or a worker); never raises: returns ``{"ok", ...}``."""
    from artlib import cache

    log = Path(job["log"])
    log.unlink(missing_ok=True)
    if job["env"].get(dryrun.ENV):
        Path(job["env"][dryrun.ENV]).unlink(missing_ok=True)   # this run's requests only
    start = time.time()
    result = {"notebook": job["notebook"], "ok": False, "seconds": 0.0}
    try:
        with _environ(**{cache.LOG_ENV: log, **job["env"]}):
            execute_notebook(job["source"], job["target"], job["parameters"], cwd=job["cwd"], kernel=job["kernel"],
                             timeout=job["timeout"])
        result["ok"] = True
    except Exception as exc:  # noqa: BLE001 - a failing cell, a kernel that dies, a broken file: report and go on
        result["error"] = notebook_error(exc)
    result["seconds"] = time.time() - start
    result["checkpoints"] = cache.read_uses(log)
    return result


def run(profile: str = "smoke", only: str | None = None, out: str | Path | None = None, jobs: int = 1,
        force: bool = False, cell_timeout: Optional[int] = None, *, dry_run: bool = False,
        manifest: Sequence[Entry] | None = None, notebooks: str | Path | None = None, kernel: str = "python3") -> int:
    """Execute the selected notebooks with papermill; return 0 when none failed, 1 otherwise.

    Args:
        profile: ``"smoke"`` (small real subsets, CPU) or ``"paper"`` (the papers' settings, GPU).
            Notebooks whose ``needs`` are missing from the data root are skipped with the download command.
        only: substring (or glob) filter on notebook names.
        out: folder for executed notebooks and their state files (default ``runs/<profile>``).
        jobs: notebooks run at once within a stage (each in its own worker process; the checkpoint cache is
            locked per run folder, so two notebooks needing one model train it once).
        force: execute even the notebooks that are up to date.
        cell_timeout: seconds one cell may run before the notebook is reported as failed (None: the profile's
            :data:`CELL_TIMEOUT`, 30 min on smoke, unlimited on paper; 0: unlimited).
        dry_run: the ``paper`` profile's dry run (:mod:`artlib.dryrun`): every notebook executes its paper branch
            with training, images and iterations cut to a few; its data root is ``<out>/data`` (the data root's
            datasets plus generated official-format trees for what it lacks), its ImageNet checkpoints random ones
            in the robust-models-transfer format, its checkpoints, figures and request logs go under ``out``
            (default ``runs/dry-run``), never over ``figures/`` or the cache; always re-executed.
        manifest, notebooks, kernel: the entries (default :data:`MANIFEST`), their folder (default ``notebooks/``)
            and the Jupyter kernel; for tests and other projects.

    Example:
        >>> run("smoke", only="03_")          # prints one line per notebook: ok / skip / up to date / FAILED
    """
    from artlib import data

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choices: {list(PROFILES)}")
    if int(jobs) < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs!r}")
    if dry_run and profile != "paper":
        raise ValueError(f"a dry run executes the paper profile's branches: profile must be 'paper', got {profile!r}")
    nb_dir = Path(notebooks) if notebooks else NOTEBOOKS
    timeout = CELL_TIMEOUT[profile] if cell_timeout is None else (int(cell_timeout) or None)
    out_dir = Path(out) if out else ROOT / "runs" / ("dry-run" if dry_run else profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Notebooks run with cwd=notebooks/: pin the data root to an absolute path so a relative default (./data) or a
    # relative $ARTLIB_DATA means the same folder inside the kernels as here.
    os.environ[data.DATA_ENV] = str(data.resolve_root().resolve())
    extra_env = {}
    if dry_run:
        force, timeout = True, timeout or CELL_TIMEOUT["reference"]
        os.environ[data.DATA_ENV] = str(dryrun.prepare_data(out_dir))
        extra_env = {"ARTLIB_RUNS": str((out_dir / "cache").resolve()),
                     "ARTLIB_FIGURES": str((out_dir / "figures").resolve()),
                     "ARTLIB_ROBUST_MODELS": str(dryrun.prepare_robust_models(out_dir))}
    artlib_sha = package_hash()
    entries = select(only, manifest)
    failures, skipped, fresh, done, seconds = [], [], [], [], {}
    t_all = time.time()
    for stage in STAGES:
        todo = []
        for entry in (e for e in entries if e.stage == stage):
            lacking = missing_data(entry, profile)
            if lacking:  # e.g. a fresh machine with only the foolbox test images: say so, run the rest
                skipped.append(entry.notebook)
                names = dict.fromkeys(need.split(":")[0] for need in lacking)   # cub200:train, cub200:test: once
                hint = "; ".join(f"python -m artlib data download {n}" for n in names)
                print(f"skip   {entry.notebook}: needs {', '.join(lacking)} under {data.resolve_root()} ({hint})")
                continue
            ok, why = up_to_date(entry, profile, out_dir, notebooks=nb_dir, artlib_sha=artlib_sha)
            if ok and not force:
                fresh.append(entry.notebook)
                print(f"fresh  {entry.notebook}: up to date (--force to rerun)")
                continue
            print(f"run    {entry.notebook}: {'--force' if ok else why}", flush=True)
            todo.append((entry, _key(entry, profile, nb_dir, artlib_sha), {
                "notebook": entry.notebook, "source": str(nb_dir / entry.notebook),
                "target": str(out_dir / entry.notebook), "parameters": entry.parameters(profile),
                "cwd": str(nb_dir), "kernel": kernel, "log": str(out_dir / (entry.name + ".checkpoints.jsonl")),
                "timeout": timeout, "env": {data.DATA_ENV: os.environ[data.DATA_ENV], **extra_env, **(
                    {dryrun.ENV: str((out_dir / (entry.name + ".requests.jsonl")).resolve())} if dry_run else {})}}))
        for (entry, key, _), res in zip(todo, _map(_execute, [job for *_, job in todo], int(jobs))):
            target = out_dir / entry.notebook
            if not res["ok"]:
                failures.append(entry.notebook)
                print(f"FAILED {entry.notebook} {res['error']}  (see {target})")
                continue
            done.append(entry.notebook)
            seconds[entry.notebook] = res["seconds"]
            if not dry_run:     # a dry run's outputs are not results: never "up to date"
                _write_state(entry, profile, out_dir, key, res["checkpoints"], res["seconds"])
            print(f"ok     {entry.notebook}  {res['seconds']:6.1f} s  -> {target}")
    if dry_run and (done or failures):
        from artlib import plan
        print(f"requests of {len(done)} dry-run notebooks recorded in {plan.record(out_dir, done)}; wall times in "
              f"{plan.record_times({**seconds, **dict.fromkeys(failures)})}")
    if skipped:
        print(f"{len(skipped)} skipped for missing data: {skipped}")
    if fresh:
        print(f"{len(fresh)} up to date, not re-executed")
    print(f"total {time.time() - t_all:.1f} s; " + (f"{len(failures)} failed: {failures}" if failures
                                                     else "no notebook failed"))
    return 1 if failures else 0


def _map(func, jobs: list, n: int) -> Iterable[dict]:
    """``func`` over ``jobs``, results in the order of ``jobs``: here when ``n == 1``, else in ``n`` spawned worker
    processes (each result is yielded as soon as it and those before it are done)."""
    if n == 1 or len(jobs) <= 1:
        for job in jobs:
            yield func(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(n, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(func, jobs)
