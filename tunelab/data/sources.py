"""What a data set is to tunelab (``Source``: its files, official download addresses, known local copies and
reader) and the image data sets; ``tunelab.data.SOURCES`` joins them with the text ones (``tunelab.data.text``)."""

import gzip
import hashlib
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunelab.data.idx import read_idx
from tunelab.data.xray import read_image_folders, read_medmnist

DOWNLOAD_TIMEOUT_S = 30
SPLIT_SEED = 0  # the splits tunelab draws itself (validation slices, the text sets' 60/20/20) are the same in every run


@dataclass(frozen=True)
class Source:
    folder: str  # the data set's folder under the data root
    urls: tuple[str, ...]  # base addresses of the official files, tried in order
    content_sha256: dict[str, str]  # file -> sha256 of its decompressed content (archives get recompressed)
    classes: list[str]
    hint: str  # how else to get it, for error messages
    system_copies: tuple[Path, ...] = field(default=())

    @property
    def files(self) -> list[str]:
        return list(self.content_sha256)

    def how_to_get(self, name: str) -> str:
        download = f" (downloads from {self.urls[0]})" if self.urls else ""
        return f"`tunelab data fetch {name}`{download}, {self.hint}"

    def present(self, folder: Path) -> bool:
        """Whether ``folder`` holds the data set."""
        return all((folder / f).is_file() for f in self.files)

    def content(self, path: Path) -> bytes:
        """The bytes of a fetched file whose sha256 is checked: an IDX archive's decompressed content."""
        return gzip.decompress(path.read_bytes())

    def read(self, folder: Path) -> dict[str, np.ndarray]:
        """The IDX quartet as arrays: train_x, train_y, test_x, test_y (images N x 1 x 28 x 28, uint8)."""
        from tunelab.errors import DamagedFile

        arrays = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            x = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
            y = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or y.max(initial=0) >= len(self.classes):
                raise DamagedFile(f"{folder}: {prefix} images {x.shape} and labels {y.shape} (max {y.max(initial=0)}) "
                                  f"do not match")  # fmt: skip
            arrays[f"{split}_x"], arrays[f"{split}_y"] = x[:, None], y
        return arrays

    def get(self, name: str, local: Path | None, dest: Path) -> list[str]:
        """Copy ``name`` from a local copy or download it to ``dest``; return what went wrong, if anything."""
        tmp = dest.with_suffix(".part")
        if local is not None:
            shutil.copyfile(local, tmp)
            origin = str(local)
        else:
            origin = None
            for base in self.urls:
                try:
                    with urllib.request.urlopen(base + name, timeout=DOWNLOAD_TIMEOUT_S) as r, open(tmp, "wb") as f:
                        shutil.copyfileobj(r, f)
                    origin = base + name
                    break
                except (urllib.error.URLError, OSError) as e:
                    last = f"{name}: download from {base} failed ({getattr(e, 'reason', e)})"
            if origin is None:
                tmp.unlink(missing_ok=True)
                return [last]
        expected = self.content_sha256.get(name)  # None: no published checksum (the text data sets)
        try:
            digest = expected and hashlib.sha256(self.content(tmp)).hexdigest()
        except (OSError, EOFError) as e:
            digest = f"unreadable ({e})"
        if digest != expected:
            tmp.unlink()
            return [f"{name} from {origin}: content checksum {digest} is not the published one"]
        tmp.replace(dest)
        return []


@dataclass(frozen=True)
class MedMNIST(Source):
    """One MedMNIST .npz holding its own train, val and test splits."""

    def content(self, path: Path) -> bytes:
        return path.read_bytes()

    def read(self, folder: Path) -> dict[str, np.ndarray]:
        return read_medmnist(folder / self.files[0], len(self.classes))


@dataclass(frozen=True)
class ImageFolders(Source):
    """Image files in ``<split>/<class>/`` folders (train, test and optionally val); behind a login, so not fetched."""

    size: int = 224  # images are stored as size x size grayscale squares

    @property
    def files(self) -> list[str]:
        return [f"{split}/{c}" for split in ("train", "test") for c in self.classes]

    def present(self, folder: Path) -> bool:
        return all((folder / f).is_dir() for f in self.files)

    def how_to_get(self, name: str) -> str:
        return f"a download from {self.urls[0]} (it needs a login, so tunelab cannot fetch it): {self.hint}"

    def get(self, name: str, local: Path | None, dest: Path) -> list[str]:
        return [f"{self.urls[0]} needs a login, so tunelab cannot download it"]

    def read(self, folder: Path) -> dict[str, np.ndarray]:
        return read_image_folders(folder, self.classes, self.size)


def _idx_files(train_x: str, train_y: str, test_x: str, test_y: str) -> dict[str, str]:
    return {
        "train-images-idx3-ubyte.gz": train_x,
        "train-labels-idx1-ubyte.gz": train_y,
        "t10k-images-idx3-ubyte.gz": test_x,
        "t10k-labels-idx1-ubyte.gz": test_y,
    }


IMAGE_SOURCES: dict[str, Source] = {
    "fashion_mnist": Source(
        folder="fashion-mnist",
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        content_sha256=_idx_files(
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
        classes=[
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],  # fmt: skip
        hint="or on Debian/Ubuntu `apt-get install dataset-fashion-mnist`",
        system_copies=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
    "mnist": Source(
        folder="mnist",
        urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        content_sha256=_idx_files(
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
        classes=[str(d) for d in range(10)],
        hint="or copy the four IDX .gz files from any MNIST mirror into the folder",
    ),
    "pneumoniamnist": MedMNIST(
        folder="pneumoniamnist",
        urls=("https://zenodo.org/records/10519652/files/",),
        content_sha256={"pneumoniamnist.npz": "e1792d3f03751cb101e99f19a63b3c1941436c988665f47853417b05be250cd8"},
        classes=["normal", "pneumonia"],
        hint="or `pip install medmnist` and copy pneumoniamnist.npz from ~/.medmnist into the folder",
    ),
    "chest_xray": ImageFolders(
        folder="chest_xray",
        urls=("https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia",),
        content_sha256={},
        classes=["NORMAL", "PNEUMONIA"],
        hint="download the archive there and unzip it into the data root, where it makes "
        "chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg",
    ),
}
