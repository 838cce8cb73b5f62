"""Training throughput (images/s) of cnn_classifier's own loop against a pytorch/examples-style DataLoader loop.

tunelab keeps a data set on its device as one uint8 tensor, takes each batch as an index slice of it and
augments whole batches (trainables/common.py). The usual course-assignment loop (pytorch/examples
``mnist/main.py``) instead runs a torchvision Dataset that turns every image into a PIL image and then a
tensor, transforms it on its own, and collates batches in a DataLoader. This measures what the first buys over
the second on a CPU, on the same model, config, data and number of images, in two cases: no augmentation,
and random flip + 2 px crop (torchvision transforms per image vs tunelab's per batch).

The DataLoader loops run the same architecture as cnn_classifier builds it, in the default (NCHW) memory
format as pytorch/examples would; one more row gives them tunelab's channels-last model, to tell the data path
apart from the memory format. Every loop is warmed up once, then timed over ``--images`` images (one epoch
each), split into interleaved rounds; the best round counts, since other processes on a shared 2-core machine
slow 2-thread training by up to 10x while they run. Ratios are against DataLoader(num_workers=1) in the same
run; absolute images/s mean little. ``--quick`` is a smoke run.
"""

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from trainables import cnn_classifier as cnn, common
from tunelab import data as datasets

WARMUP_IMAGES = 1024


class ArrayDataset(Dataset):
    """torchvision's MNIST ``__getitem__``: one uint8 image -> PIL image -> transforms -> tensor."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x[:, 0].numpy(), y.tolist(), transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i], mode="L")), self.y[i]


def train_dataloader(model, optimizer, scheduler, loader, config) -> None:
    """pytorch/examples ``train()``: batches from the loader, log the loss every 10 batches."""
    model.train()
    for batch_idx, (xb, yb) in enumerate(loader):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb, label_smoothing=config["label_smoothing"])
        loss.backward()
        optimizer.step()
        scheduler.step()
        if batch_idx % 10 == 0:
            loss.item()


def tunelab_loop(config, data):
    """cnn_classifier's own build and train_epoch on the device tensors (channels-last model, as it builds it)."""
    parts = cnn.build(config, data)
    return lambda d: cnn.train_epoch(parts, d, config)


def dataloader_loop(config, data, workers: int, channels_last: bool = False):
    """The same architecture without its Normalize layer (the transforms normalise), same optimizer and LR schedule."""
    x, _ = data.splits["train"]
    model = cnn.make_model(config, x, len(data.classes))
    std, mean = torch.std_mean(common.to_float(x))
    model[0] = nn.Identity()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = common.make_optimizer(config, model.parameters())
    scheduler = common.make_scheduler(config, optimizer, len(x))
    augment = [transforms.RandomHorizontalFlip(), transforms.RandomCrop(28, padding=config["crop_pad"])]
    tf = transforms.Compose([transforms.ToTensor(), *(augment if config["augment"] != "none" else []),
                             transforms.Normalize((mean.item(),), (std.item(),))])  # fmt: skip

    def run(d):
        loader = DataLoader(ArrayDataset(*d.splits["train"], tf), batch_size=config["batch_size"], shuffle=True,
                            num_workers=workers)  # fmt: skip
        train_dataloader(model, optimizer, scheduler, loader, config)

    return run


def sliced(data, start: int, stop: int) -> datasets.Data:
    x, y = data.splits["train"]
    return datasets.Data(data.name, {"train": (x[start:stop], y[start:stop])}, data.classes, data.device)


def measure(loops: dict, config: dict, data, n: int, rounds: int) -> dict[str, list[float]]:
    """images/s of each loop in each round; a round runs every loop once on its own n/rounds images, so that a
    burst of load from elsewhere on the machine hits all loops alike rather than one of them."""
    built = {name: make(config, sliced(data, 0, n)) for name, make in loops.items()}
    for loop in built.values():
        loop(sliced(data, n, min(n + WARMUP_IMAGES, len(data.splits["train"][1]))))
    rates: dict[str, list[float]] = {name: [] for name in built}
    chunk = n // rounds
    for r in range(rounds):
        for name, loop in built.items():
            start = time.perf_counter()
            loop(sliced(data, r * chunk, (r + 1) * chunk))
            rates[name].append(chunk / (time.perf_counter() - start))
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1k images: a smoke run")
    p.add_argument("--images", type=int, help="images timed per loop (default 20000, --quick 1000)")
    p.add_argument("--rounds", type=int, help="interleaved rounds the images are split into (default 10, --quick 1)")
    args = p.parse_args()
    n, rounds = args.images or (1000 if args.quick else 20000), args.rounds or (1 if args.quick else 10)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    data = datasets.load_dataset("fashion_mnist", datasets.data_root(), "search")
    available = len(data.splits["train"][1]) - WARMUP_IMAGES
    if n > available:  # a small data set (a test's generated one): time what there is
        n = max(available, len(data.splits["train"][1]) // 2)
        print(f"only {n} images to time in this data set (the rest warms up)")
    loops = {
        "DataLoader, num_workers=1": lambda c, d: dataloader_loop(c, d, workers=1),
        "DataLoader, num_workers=0": lambda c, d: dataloader_loop(c, d, workers=0),
        "DataLoader, num_workers=1, channels-last": lambda c, d: dataloader_loop(c, d, 1, channels_last=True),
        "tunelab train_epoch": tunelab_loop,
    }
    print(
        f"cnn_classifier defaults (batch {cnn.DEFAULTS['batch_size']}, {cnn.DEFAULTS['optimizer']}), {n} images per "
        f"loop in {rounds} interleaved round(s), torch threads 2, {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    print(f"load average before: {os.getloadavg()[0]:.1f} (other processes on these CPUs slow every loop unevenly)")
    for augment in ("none", "flip_crop"):
        rates = measure(loops, cnn.DEFAULTS | {"augment": augment, "epochs": 2}, data, n, rounds)
        base = max(rates["DataLoader, num_workers=1"])
        print(f"\naugmentation: {'none' if augment == 'none' else 'flip + crop'}")
        print(f"| {'loop':42s} | images/s (best round) | median round | vs DataLoader(1) |")
        print(f"|{'-' * 44}|----------------------:|-------------:|-----------------:|")
        for name, r in rates.items():
            print(f"| {name:42s} | {max(r):21.0f} | {statistics.median(r):12.0f} | {max(r) / base:15.2f}x |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
