"""Pytest configuration shared by the unit tests (tests/) and the nbval run over notebooks/.

Real-data tests read the small real subsets from the data root (``$ARTLIB_DATA``; the Makefile points it at
``../shared/data`` when that folder exists). Without them such tests are *skipped with the reason*; with
``ARTLIB_REQUIRE_DATA=1`` (set by .ci/run) a missing data root is an error instead, so CI never skips silently.
"""
import os
from pathlib import Path

import pytest

REQUIRED = ("cifar10-jpeg", "gtsrb", "CUB_200_2011", "flowers17", "imagenet-samples")


def shared_data_root() -> Path | None:
    """The data root holding the real subsets, or None when ``$ARTLIB_DATA`` is unset or lacks any of them."""
    env = os.environ.get("ARTLIB_DATA")
    root = Path(env) if env else Path(__file__).resolve().parent.parent / "shared" / "data"
    return root if all((root / d).exists() for d in REQUIRED) else None


def require_shared_data() -> Path:
    """Return the shared data root; skip (or fail when ARTLIB_REQUIRE_DATA=1) with the path looked at."""
    root = shared_data_root()
    if root is None:
        msg = (f"real data subsets {REQUIRED} not found under $ARTLIB_DATA={os.environ.get('ARTLIB_DATA')!r} "
               f"or ../shared/data; set ARTLIB_DATA to a folder holding them")
        if os.environ.get("ARTLIB_REQUIRE_DATA") == "1":
            pytest.fail(msg + " (ARTLIB_REQUIRE_DATA=1: CI must not skip)", pytrace=False)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Session fixture: the data root with the real subsets (sets ARTLIB_DATA for code under test)."""
    root = require_shared_data()
    os.environ["ARTLIB_DATA"] = str(root)
    return root


def pytest_collection_modifyitems(config, items):
    """Notebook cells (nbval) compare outputs recorded on the real subsets: skip them without those subsets."""
    nb_items = [it for it in items if it.nodeid.split("::")[0].endswith(".ipynb")]
    if not nb_items or shared_data_root() is not None:
        return
    reason = ("notebook outputs were recorded on the real data subsets; set ARTLIB_DATA to ../shared/data "
              "(or run `make reproduce`, which runs the notebooks on whatever real images this machine has)")
    if os.environ.get("ARTLIB_REQUIRE_DATA") == "1":
        raise pytest.UsageError("ARTLIB_REQUIRE_DATA=1 but the real data subsets are missing: " + reason)
    for it in nb_items:
        it.add_marker(pytest.mark.skip(reason=reason))
