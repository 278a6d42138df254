"""artlib: reproducibility package for two papers on the robustness of attributions.

- ART: Singh et al., "Attributional Robustness Training using Input-Gradient Spatial Alignment", ECCV 2020.
- Inequality: Duan et al., "Inequality phenomenon in l-infinity adversarial training, and its unrealized threats", ICLR 2023.

Submodules are imported on use (``from artlib import data, models``) so that ``import artlib`` stays cheap.
"""
import importlib

__version__ = "0.1.0"
__all__ = ["attacks", "attribution", "checkpoints", "data", "losses", "metrics", "models", "params", "plots",
           "reproduce", "train", "wsol"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'artlib' has no attribute {name!r}")
