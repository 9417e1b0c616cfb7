"""The example notebook, from the template file ``inference_notebook.tmpl`` (cells after ``# %% [markdown]`` /
``# %% [code]`` lines, ``$names`` filled in), and the dataset's ``dataset-metadata.json``."""
from __future__ import annotations

import re
from importlib import resources
from string import Template

from .common import COMPETITION, DEFAULT_SLUG, NOTEBOOK_NAME, PACKAGE, TIME_BUDGET

TEMPLATE_NAME = "inference_notebook.tmpl"
_CELL = re.compile(r"^# %% \[(markdown|code)\]\n", re.M)


def cells(text: str) -> list[tuple[str, str]]:
    """``(kind, source)`` of every cell of a template text."""
    pieces = _CELL.split(text)
    if pieces[0].strip():
        raise ValueError(f"{TEMPLATE_NAME}: text before the first '# %% [kind]' line")
    return [(kind, source.strip("\n")) for kind, source in zip(pieces[1::2], pieces[2::2])]


def _cell(kind: str, source: str, index: int) -> dict:
    cell = {"cell_type": kind, "id": f"cell-{index}", "metadata": {}, "source": source.splitlines(True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(slug: str = DEFAULT_SLUG, dataset_id: str | None = None) -> dict:
    """The example notebook (nbformat 4): install from the dataset's wheels, predict, show the submission.

    ``KAGGLE_INPUT_ROOT`` / ``KAGGLE_WORKING`` (default ``/kaggle/input`` / ``/kaggle/working``) move every path,
    ``DEEPFAKE_KERNEL_ARGS`` adds predict options: that is how the test runs it outside Kaggle.
    """
    text = resources.files(__package__).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
    filled = Template(text).substitute(slug=slug, dataset_id=dataset_id or f"<username>/{slug}",
                                       competition=COMPETITION, package=PACKAGE, time_budget=TIME_BUDGET)
    return {"cells": [_cell(kind, source, i) for i, (kind, source) in enumerate(cells(filled))],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def dataset_metadata(user: str, slug: str, title: str, license_name: str) -> dict:
    """``dataset-metadata.json`` as the Kaggle CLI reads it (``kaggle datasets create -p OUT_DIR``)."""
    return {"title": title, "id": f"{user}/{slug}", "licenses": [{"name": license_name}],
            "subtitle": "Offline install of deepfake_kernel: wheels, weights, notebook",
            "description": (f"Wheels (`pip install --no-index --find-links=/kaggle/input/{slug}/wheels "
                            f"{PACKAGE}`), checkpoints (`weights/`) and an example notebook "
                            f"(`{NOTEBOOK_NAME}`) for the {COMPETITION} with the internet off. torch and "
                            f"torchvision come from the Kaggle image. Each wheel keeps its own license "
                            f"(see its METADATA).")}
