"""What a search and a retrain show while they run: a tqdm.auto bar where someone watches (a terminal; a Jupyter
kernel, where it is a widget), else plain lines, which a log (CI, ``nohup``, a pipe) keeps readable."""

import shutil
import sys

from tqdm.auto import tqdm

SIZE = {"ncols": 100, "nrows": 24}  # of a terminal that reports none


def watched() -> bool:
    """Whether someone watches the output: a terminal, or a Jupyter kernel (a notebook, Colab: no terminal). A
    process that merely imported ipykernel or IPython (a test runner driving a notebook) is not a kernel: its shell
    has no ``kernel``."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return sys.stdout.isatty() or getattr(shell, "kernel", None) is not None


def bar(total: int, unit: str, **options) -> tqdm:
    """A bar on standard output, beside the lines (``line``), as wide as the terminal. A terminal that reports a
    size of 0 (a pseudo-terminal without one: ``script``, some ``docker exec -t``), where tqdm draws nothing, gets
    ``SIZE``; a notebook's widget sizes itself."""
    sizeless = sys.stdout.isatty() and shutil.get_terminal_size((0, 0)).columns == 0
    size = SIZE if sizeless else {"dynamic_ncols": True}
    return tqdm(total=total, unit=unit, file=sys.stdout, **size, **options)


def line(text: str) -> None:
    """A line of its own, above the bar where one is drawn."""
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()
