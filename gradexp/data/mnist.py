"""MNIST from the standard IDX files in a folder the config names (E4, seed 004); nothing is downloaded.

The folder holds the four files of http://yann.lecun.com/exdb/mnist/, each optionally gzipped:
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.

IDX layout (big-endian): two zero bytes, a type byte (0x08: unsigned byte), a byte with the number
of dimensions d, then d 32-bit sizes, then the values. Images are d = 3 (count, rows, columns),
labels d = 1 (count). Images are flattened to rows x columns values and divided by `scale`
(E4 divides by 50, not 255). The last `dev_size` training images form the dev split
(5,000 by default, as Keras' and TensorFlow's MNIST tutorials hold out); the t10k files are the test split.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from gradexp.data import DATASETS
from gradexp.data.base import Dataset, DataSpec, Split
from gradexp.errors import ConfigError, DataError
from gradexp.value_types import PositiveFloat, PositiveInt

UNSIGNED_BYTE = 0x08
NUM_CLASSES = 10
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def locate(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.gz` when only the gzipped file is there."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(str(folder / name), f"no such file (nor {name}.gz); put the four MNIST IDX files "
                                        f"{', '.join(n for pair in FILES.values() for n in pair)} in {folder}")


def read_idx(path: Path, dimensions: int) -> np.ndarray:
    """The unsigned-byte array stored in IDX file `path`, which must have `dimensions` dimensions."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as failure:
        raise DataError(str(path), f"cannot be read ({failure})") from None
    header_size = 4 + 4 * dimensions
    expected = bytes([0, 0, UNSIGNED_BYTE, dimensions])
    if len(raw) >= 4 and raw[:4] != expected:
        raise DataError(str(path), f"bad magic number 0x{raw[:4].hex()}, expected 0x{expected.hex()} "
                                   f"(an IDX file of unsigned bytes with {dimensions} dimension(s))")
    if len(raw) < header_size:
        raise DataError(str(path), f"truncated: {len(raw)} bytes, shorter than its {header_size}-byte header")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=dimensions, offset=4))
    values = len(raw) - header_size
    if values != int(np.prod(shape)):
        problem = "truncated" if values < int(np.prod(shape)) else "has trailing bytes"
        raise DataError(str(path), f"{problem}: the header promises {' x '.join(map(str, shape))} = "
                                   f"{int(np.prod(shape))} values, the file holds {values}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_split(folder: Path, images_name: str, labels_name: str, scale: float) -> Split:
    """One split: images flattened and divided by `scale`, labels checked against the image count and 0..9."""
    images_path, labels_path = locate(folder, images_name), locate(folder, labels_name)
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(str(labels_path), f"holds {len(labels)} labels but {images_path.name} holds {len(images)} images")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise DataError(str(labels_path), f"holds label {int(labels.max())}, expected digits 0-9")
    pixels = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / np.float32(scale))
    return Split(pixels, torch.from_numpy(labels.astype(np.int64)))


@DATASETS.register("mnist")
def mnist(seed: int, *, path: str, scale: PositiveFloat = 255.0, dev_size: PositiveInt = 5000) -> Dataset:
    """Read the four IDX files in folder `path`; pixels x / scale (the default 255 maps them to [0, 1])."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(str(folder), "no such folder; put the four MNIST IDX files (optionally .gz) in it "
                                     "and set data.path to it")
    train, test = (read_split(folder, *FILES[split], scale) for split in ("train", "test"))
    if train.inputs.shape[1] != test.inputs.shape[1]:
        raise DataError(str(folder), f"training images have {train.inputs.shape[1]} pixels, "
                                     f"test images {test.inputs.shape[1]}")
    if dev_size >= len(train):
        raise ConfigError("", "data.dev_size", f"expected fewer than the {len(train)} training images, got {dev_size}")
    keep = len(train) - dev_size
    spec = DataSpec(task="classification", input_shape=(train.inputs.shape[1],), output_dim=NUM_CLASSES)
    return Dataset(spec=spec, train=Split(train.inputs[:keep], train.targets[:keep]),
                   dev=Split(train.inputs[keep:], train.targets[keep:]), test=test)
