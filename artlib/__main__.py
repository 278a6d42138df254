"""Command line: ``python -m artlib {data,models,train,reproduce} ...``.

Examples::

    python -m artlib data list                 # each dataset: found/missing, path, number of images
    python -m artlib data download gtsrb       # official URLs, checksums verified ($ARTLIB_MIRROR: a mirror)
    python -m artlib data ensure --profile paper   # download what the paper profile reads, when missing
    python -m artlib data fetch-samples        # the 20 exact CIFAR-10/ImageNet/MNIST test images of the foolbox wheel
    python -m artlib models convert ckpt.pt --out ckpt_plain.pt --trust-pickle
    python -m artlib models convert https://host/resnet50_linf_eps4.0.ckpt --sha256 HEX --out r50.pt --trust-pickle
    python -m artlib train --dataset cifar10 --method art      # also: torchrun --nproc_per_node=N -m artlib.train ...
    python -m artlib zoo list                  # the reference zoo of learned models (also: zoo train, zoo verify)
    python -m artlib reproduce --profile smoke
    python -m artlib notebook notebooks/02_train_art.ipynb out.ipynb -p method art   # papermill, one-line errors
"""
from __future__ import annotations

import argparse
import sys


def _cmd_data_list(args) -> int:
    from artlib import data

    rows = data.dataset_status(args.root)
    width = max(len(r["name"]) for r in rows)
    print(f"data root: {data.resolve_root(args.root)}")
    for r in rows:
        state = "found  " if r["found"] else "missing"
        n = f"{r['n_images']:>7,d} images" if r["found"] else " " * 14
        src = f"  [{r['source']}]" if r.get("source") else ""
        print(f"{r['name']:<{width}}  {state}  {n}  {r['path']}{src}")
    return 0


def _cmd_data_download(args) -> int:
    from artlib import data

    path = data.download(args.name, args.root)
    print(f"{args.name}: ready at {path}")
    return 0


def _cmd_data_fetch_samples(args) -> int:
    from artlib import data

    path = data.fetch_foolbox_samples(args.root)
    print(f"foolbox samples at {path}")
    return 0


def _cmd_data_ensure(args) -> int:
    """Download what a profile's notebooks read when missing (data.ensure); offline, use what is there. Without
    CIFAR-10 afterwards, fetch the foolbox samples (its 20 real test images) so the smoke notebooks still run.
    Exit status 2 when a verified download failed (HTML page, truncated, checksum), else 0."""
    from artlib import data, reproduce

    names = args.name or reproduce.profile_datasets(args.profile)
    rows = data.ensure(names, args.root, progress=not args.no_progress)
    print(f"data root: {data.resolve_root(args.root)} ({args.profile} profile)" if not args.name else
          f"data root: {data.resolve_root(args.root)}")
    for r in rows:
        print(f"{r['name']:<18} {r['state']:<10} {r['message']}".rstrip())
    if not data.available("cifar10", args.root):
        path = data.fetch_foolbox_samples(args.root)
        print(f"{'cifar10':<18} {'samples':<10} no CIFAR-10 under the data root: using the foolbox samples at {path}")
    return 2 if any(r["state"] == "failed" for r in rows) else 0


def _cmd_models_convert(args) -> int:
    from artlib import models

    out = models.convert_robustness_checkpoint(args.file, args.out, trust_pickle=args.trust_pickle, sha256=args.sha256)
    print(f"wrote {out} (+ {out}.json with its sha256)")
    return 0


def _cmd_reproduce(args) -> int:
    from artlib import reproduce

    if args.plan:
        if args.profile != "paper":
            raise ValueError(f"--plan estimates the paper profile's cost: use --profile paper, not {args.profile!r}")
        from artlib import plan
        print(plan.render(plan.model_table(reproduce.select(args.only)), plan.dataset_table(args.profile)))
        return 0

    return reproduce.run(profile=args.profile, only=args.only, out=args.out, jobs=args.jobs, force=args.force,
                         cell_timeout=args.cell_timeout, dry_run=args.dry_run)


def _papermill_value(text: str):
    """A ``-p NAME VALUE`` value as papermill's command line reads it: True / False / None, an int, a float, else
    the string (so ``-p eps 8/255`` stays the string the notebooks parse)."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _cmd_notebook(args) -> int:
    import papermill as pm

    from artlib import reproduce

    names = [n for n, _ in args.parameters]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"parameter {twice[0]!r} given more than once")
    given = {n: _papermill_value(v) for n, v in args.parameters}
    try:
        reproduce.execute_notebook(args.notebook, args.output, given, cwd=args.cwd, kernel=args.kernel,
                                   timeout=args.cell_timeout or None, progress=not args.no_progress)
    except pm.PapermillExecutionError as exc:
        print(f"error: {args.notebook} failed {reproduce.notebook_error(exc)} (the executed notebook with the "
              f"whole traceback: {args.output})", file=sys.stderr)
        return 2
    print(f"ok {args.notebook} -> {args.output}")
    return 0


def _int_at_least(lo: int):
    """argparse type: an int >= ``lo`` (argparse then prints one line and exits with status 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {lo}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be an int >= {lo}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m artlib", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="command", required=True)

    p_data = sub.add_parser("data", help="list, download or fetch datasets")
    data_sub = p_data.add_subparsers(dest="data_command", required=True)
    for name, func, help_ in [("list", _cmd_data_list, "each dataset: found/missing, path, number of images"),
                              ("fetch-samples", _cmd_data_fetch_samples,
                               "fetch the foolbox==3.3.4 wheel's 20 exact test images per dataset from PyPI")]:
        p = data_sub.add_parser(name, help=help_)
        p.add_argument("--root", default=None, help="data root (default: $ARTLIB_DATA, else ./data)")
        p.set_defaults(func=func)
    p = data_sub.add_parser("ensure", help="download what a profile's notebooks need when missing (verified; "
                                           "offline: use what is there)")
    p.add_argument("name", nargs="*", help="datasets instead of the profile's (same names as `download`)")
    p.add_argument("--profile", choices=("smoke", "reference", "paper"), default="reference",
                   help="the profile whose notebooks' datasets to get (default reference)")
    p.add_argument("--root", default=None, help="data root (default: $ARTLIB_DATA, else ./data)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_data_ensure)
    p = data_sub.add_parser("download", help="download a dataset in its official format (checksums verified)")
    p.add_argument("name", help="dataset name: cifar10, svhn, gtsrb, flowers17, flowers17-trimaps, cub200, cifar10c, "
                                "imagenet (prints the manual steps), foolbox-samples")
    p.add_argument("--root", default=None, help="data root (default: $ARTLIB_DATA, else ./data)")
    p.set_defaults(func=_cmd_data_download)

    p_models = sub.add_parser("models", help="model checkpoint utilities")
    models_sub = p_models.add_subparsers(dest="models_command", required=True)
    p = models_sub.add_parser("convert", help="convert a robust-models-transfer checkpoint to a plain state dict")
    p.add_argument("file", help="checkpoint in microsoft/robust-models-transfer format (or a plain state dict): a "
                                "file, or an http(s) URL fetched once into $ARTLIB_WEIGHTS (resumable, verified)")
    p.add_argument("--sha256", default=None, help="expected sha256 of the file, checked before it is read")
    p.add_argument("--out", required=True, help="where to write the plain state dict (a .json sidecar is added)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling the file (needs `dill`); only for files from a source you trust")
    p.set_defaults(func=_cmd_models_convert)

    # `train` forwards everything after it to artlib.train.main (see main()); listed here for --help.
    sub.add_parser("train", help="train a model (all options: python -m artlib train --help)", add_help=False)
    sub.add_parser("zoo", help="the reference zoo: list, train, verify (python -m artlib zoo --help)", add_help=False)

    p = sub.add_parser("reproduce", help="execute the notebooks of the manifest with papermill")
    p.add_argument("--profile", choices=("smoke", "reference", "paper"), default="reference",
                   help="reference (default): the zoo's learned models, the papers' settings on more images (2 CPU "
                        "cores; benchmarks/results/reference.md); smoke: the CI pipeline check (zoo models, few "
                        "images); paper: GPU")
    p.add_argument("--only", default=None, help="run only notebooks whose name contains this pattern")
    p.add_argument("--out", default=None, help="folder for executed notebooks (default runs/<profile>)")
    p.add_argument("--jobs", type=_int_at_least(1), default=1, help="notebooks to run at once (int >= 1)")
    p.add_argument("--force", action="store_true", help="re-execute notebooks that are up to date")
    p.add_argument("--plan", action="store_true",
                   help="paper profile only: print the models each notebook trains, their estimated H200 hours and "
                        "the datasets missing, then exit (artlib.plan)")
    p.add_argument("--dry-run", action="store_true",
                   help="paper profile only: every notebook's paper branch with training, images and iterations cut "
                        "to a few (artlib.dryrun); outputs under runs/dry-run, not results")
    p.add_argument("--cell-timeout", type=_int_at_least(0), default=None,
                   help="seconds a cell may run before its notebook fails (default: 1800 smoke, none paper; 0: none)")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("notebook", help="execute one notebook with papermill: parameters checked against its "
                                        "parameters cell, a failure in one line")
    p.add_argument("notebook", help="the notebook to run, e.g. notebooks/02_train_art.ipynb")
    p.add_argument("output", help="where to write the executed notebook (outputs and full traceback)")
    p.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="a parameter of the notebook's parameters cell, as papermill's -p "
                                                   "(True / False / None, numbers, else a string)")
    p.add_argument("--cwd", default=None, help="working folder of the kernel (default: the notebook's folder)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    p.add_argument("--cell-timeout", type=_int_at_least(0), default=0,
                   help="seconds a cell may run before the notebook fails (default 0: no limit)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over the cells")
    p.set_defaults(func=_cmd_notebook)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["zoo"]:
        from artlib import zoo
        try:
            return zoo.main(argv[1:])
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if argv[:1] == ["train"]:
        from artlib import train

        return train.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # one clear line, no traceback, for known bad input
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
