"""Reader for the IDX files of MNIST and Fashion-MNIST (gzip-compressed or plain)."""

import gzip
import zlib
from pathlib import Path

import numpy as np

from tunelab.errors import DamagedFile

_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file; a clear error when the file is corrupt or truncated."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DamagedFile(f"{path}: cannot read it ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DamagedFile(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset, expected = 4 + 4 * ndim, int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DamagedFile(f"{path}: truncated or corrupt IDX file (header says {shape}, {expected} bytes of data, "
                          f"found {len(raw) - offset})")  # fmt: skip
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as a gzip-compressed IDX file (used for test fixtures)."""
    code = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    be = array.astype(np.dtype(_DTYPES[code]))
    path.write_bytes(gzip.compress(header + be.tobytes(), mtime=0))
