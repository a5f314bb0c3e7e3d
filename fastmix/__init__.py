"""Modules:

- `fastmix.train`: `fastmix-train` trains any registered architecture N times for E epochs (or for a time budget) with the flat-then-cosine schedule of the ImageWoof/Imagenette leaderboard runs (fastai forums, "How we beat the 5 epoch ImageWoof leaderboard score - some new techniques to consider"), on your own image folder or on ImageWoof/Imagenette, and appends one row per run to a CSV: accuracy, top-5, time, throughput, parameters, multiply-adds and peak memory. Each run keeps its exported model, its per-epoch metrics and a checkpoint after every epoch; the same command again resumes where it stopped."""

from importlib.metadata import version as _version, PackageNotFoundError as _PNF
try: __version__ = _version('fastmix')
except _PNF: __version__ = 'unknown'  # imported from a checkout that was never installed
