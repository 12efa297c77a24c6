"""The MNIST reader on tiny IDX files written here, plain and gzipped, and every way such a file can be wrong."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gradexp.cli import main
from gradexp.config.loading import load_config
from gradexp.data import DATASETS
from gradexp.errors import ConfigError, DataError
from gradexp.runner import run
from tests.conftest import CONFIGS

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of an unsigned-byte array: 0, 0, type 0x08, dimensions, big-endian sizes, values."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, content: bytes, zipped: bool = False) -> Path:
    if zipped:
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def make_mnist(folder: Path, train: int = 12, test: int = 5, side: int = 4, zipped: bool = False,
               seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (train, side, side)), TRAIN_LABELS: rng.integers(0, 10, train),
        TEST_IMAGES: rng.integers(0, 256, (test, side, side)), TEST_LABELS: rng.integers(0, 10, test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write(folder / name, idx_bytes(array), zipped)
    return arrays


def build(folder: Path, **settings):
    return DATASETS.get("mnist")(seed=0, path=str(folder), **{"dev_size": 2, **settings})


@pytest.mark.parametrize("zipped", [False, True])
def test_reads_flattens_scales_and_carves_the_dev_split(tmp_path: Path, zipped: bool) -> None:
    arrays = make_mnist(tmp_path, zipped=zipped)
    dataset = build(tmp_path, scale=50.0, dev_size=3)
    images = torch.from_numpy(arrays[TRAIN_IMAGES].reshape(12, 16).astype(np.float32)) / 50
    labels = torch.from_numpy(arrays[TRAIN_LABELS])
    torch.testing.assert_close(dataset.train.inputs, images[:9])
    torch.testing.assert_close(dataset.dev.inputs, images[9:])  # the last dev_size training images
    assert torch.equal(dataset.train.targets, labels[:9]) and torch.equal(dataset.dev.targets, labels[9:])
    assert dataset.train.targets.dtype == torch.long
    torch.testing.assert_close(dataset.test.inputs,
                               torch.from_numpy(arrays[TEST_IMAGES].reshape(5, 16).astype(np.float32)) / 50)
    assert dataset.spec.input_shape == (16,) and dataset.spec.output_dim == 10


def test_plain_and_gzipped_files_mix(tmp_path: Path) -> None:
    arrays = make_mnist(tmp_path / "plain")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for number, (name, array) in enumerate(arrays.items()):
        write(mixed / name, idx_bytes(array), zipped=number % 2 == 0)
    assert torch.equal(build(mixed).train.inputs, build(tmp_path / "plain").train.inputs)


def test_missing_folder_and_missing_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        build(tmp_path / "absent")
    make_mnist(tmp_path)
    (tmp_path / TEST_LABELS).unlink()
    with pytest.raises(DataError, match=f"{TEST_LABELS}: no such file \\(nor {TEST_LABELS}.gz\\)"):
        build(tmp_path)


@pytest.mark.parametrize("name, content, message", [
    (TRAIN_IMAGES, bytes([0, 0, 8, 1, 0, 0, 0, 0]), "bad magic number 0x00000801, expected 0x00000803"),
    (TRAIN_LABELS, b"\x1f\x8b\x08\x00garbage", "bad magic number 0x1f8b0800"),
    (TRAIN_IMAGES, bytes([0, 0, 8, 3, 0, 0]), "truncated: 6 bytes, shorter than its 16-byte header"),
    (TRAIN_IMAGES, b"", "truncated: 0 bytes"),
    (TRAIN_IMAGES, idx_bytes(np.zeros((12, 4, 4)))[:-1], "truncated: the header promises 12 x 4 x 4 = 192 values, "
                                                          "the file holds 191"),
    (TEST_LABELS, idx_bytes(np.zeros(5)) + b"\x00", "has trailing bytes"),
    (TRAIN_LABELS, idx_bytes(np.zeros(11)), "holds 11 labels but train-images-idx3-ubyte holds 12 images"),
    (TEST_LABELS, idx_bytes(np.array([1, 2, 10, 3, 4])), "holds label 10, expected digits 0-9"),
])
def test_malformed_files_are_reported_by_name(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    make_mnist(tmp_path)
    write(tmp_path / name, content)
    with pytest.raises(DataError) as failure:
        build(tmp_path)
    assert str(failure.value).startswith(str(tmp_path / name)) and message in str(failure.value)


def test_corrupt_gzip_and_mismatched_image_sizes(tmp_path: Path) -> None:
    make_mnist(tmp_path / "corrupt")
    (tmp_path / "corrupt" / TEST_IMAGES).unlink()
    write(tmp_path / "corrupt" / f"{TEST_IMAGES}.gz", gzip.compress(idx_bytes(np.zeros((5, 4, 4))))[:-6])
    with pytest.raises(DataError, match=f"{TEST_IMAGES}.gz: cannot be read"):
        build(tmp_path / "corrupt")
    make_mnist(tmp_path / "sizes")
    write(tmp_path / "sizes" / TEST_IMAGES, idx_bytes(np.zeros((5, 3, 3))))
    with pytest.raises(DataError, match="training images have 16 pixels, test images 9"):
        build(tmp_path / "sizes")


def test_dev_size_must_leave_training_images(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    with pytest.raises(ConfigError, match="data.dev_size.*fewer than the 12 training images"):
        build(tmp_path, dev_size=12)


def test_shipped_config_runs_on_tiny_files_and_fails_clearly_without_them(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    make_mnist(folder, train=40, test=10, side=28, zipped=True)
    overrides = [f"data.path={folder}", "data.dev_size=8", "train.epochs=1", "train.batch_size=16",
                 "train.device=cpu"]
    result = run(load_config(CONFIGS / "mnist_global15.yaml", overrides), tmp_path / "runs")
    assert result.summary.status == "completed" and result.summary.steps == 2  # 32 images / 16
    assert result.summary.parameters[0] == "layers.0.weight" and result.summary.test["accuracy"] is not None
    missing = CliRunner().invoke(main, ["validate", str(CONFIGS / "mnist_global15.yaml"),
                                        "--set", f"data.path={tmp_path / 'nowhere'}"])
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1
    assert missing.output.startswith("error: ") and missing.output.strip().endswith(
        f"{tmp_path / 'nowhere'}: no such folder; put the four MNIST IDX files (optionally .gz) in it and set "
        "data.path to it")
