"""examples/quickstart.ipynb, run top to bottom as a student runs it: by a real Jupyter kernel of this Python
(nbclient), in a folder of its own, on budgets small enough for CI. No cell may raise; the leaderboard shows rows,
the report's figures show inline, and the student's own model is searched with its new hyperparameter."""

import base64
import os
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO
from tunelab.engine.search import FINISHED

NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
QUICK = "40s"  # each search's budget, calibration included (the notebook's first cell: then a 1-epoch retrain)
CELL_TIMEOUT_S = 900  # a loaded 2-core CPU runs each cell in a few minutes at most
SAVE_TO = "TUNELAB_NOTEBOOK_EXECUTED"  # a path to keep the executed notebook at, to look at its outputs


def nbformat():
    try:
        import nbformat
    except ImportError:
        pytest.fail("nbclient, nbformat and ipykernel are in the test extra: pip install -e '.[test]'")
    return nbformat


def cell(notebook, source: str):
    """The code cell whose source starts with ``source``."""
    found = [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(source)]
    assert len(found) == 1, f"{len(found)} code cells start with {source!r}"
    return found[0]


def shown(code_cell, mime: str) -> str:
    """What the cell shows as ``mime``: its results and displays joined (stream text for text/plain)."""
    parts = [o.get("data", {}).get(mime, "") for o in code_cell.outputs]
    if mime == "text/plain":
        parts += [o.get("text", "") for o in code_cell.outputs if o.output_type == "stream"]
    return "\n".join(parts)


def test_the_notebook_is_stored_without_outputs():
    """Outputs in the repository would be stale (and large): a reader runs it, and the test suite does."""
    notebook = nbformat().read(NOTEBOOK, as_version=4)
    ran = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not ran, f"cells {ran} of {NOTEBOOK} hold outputs: clear them before committing"


@pytest.mark.slow
def test_the_quickstart_notebook_runs_top_to_bottom_in_a_kernel(fashion_root, tmp_path, monkeypatch):
    formats = nbformat()
    from nbclient import NotebookClient

    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "RAY_ADDRESS", "TUNELAB_RESULTS", "TUNELAB_LOCAL_COPIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUNELAB_NOTEBOOK_QUICK", QUICK)
    monkeypatch.setenv("TUNELAB_DATA", str(fashion_root))
    # `!tunelab ...` in a cell: this Python's command line, as in an activated virtual environment
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

    notebook = formats.read(NOTEBOOK, as_version=4)
    notebook.cells.append(formats.v4.new_code_cell("import sys\nprint(sys.prefix)"))  # which Python the kernel is
    client = NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    try:
        client.execute()  # a cell that raises raises CellExecutionError here, with the cell and its traceback
    finally:
        formats.write(notebook, tmp_path / "quickstart_executed.ipynb")
        if os.environ.get(SAVE_TO):
            formats.write(notebook, os.environ[SAVE_TO])

    assert shown(notebook.cells[-1], "text/plain").strip() == sys.prefix  # the kernel ran this environment's Python
    for command in ("!tunelab data fetch", "!tunelab new", "!tunelab check"):  # a failed `!` command raises nothing
        text = shown(cell(notebook, command), "text/plain")
        assert "error" not in text.lower() and "FAILED" not in text, f"{command}:\n{text}"

    board = shown(cell(notebook, "run.leaderboard.head()"), "text/html")
    assert len(re.findall(r"<tr>", board.split("<tbody>")[-1])) >= 1, board  # a DataFrame with rows

    report = shown(cell(notebook, "run.report()"), "text/html")
    figures = re.findall(r"src='data:image/png;base64,([^']+)'", report)
    assert len(figures) >= 3, report[:2000]  # inline, as data: the notebook's page has no file beside it
    assert all(base64.b64decode(f).startswith(b"\x89PNG") for f in figures)
    assert "<style" not in report  # the report's page style stays out of the notebook's

    run = shown(cell(notebook, "run = tunelab.search("), "text/html")
    assert "tunelab run fashion_cnn" in run and "Best: trial" in run, run[:2000]

    assert (tmp_path / "my_cnn.py").is_file() and (tmp_path / "results" / "my_cnn").is_dir()  # in its own folder
    mine = pd.read_csv(tmp_path / "results" / "my_cnn" / "leaderboard.csv")
    assert mine["status"].isin(FINISHED).any(), mine
    assert set(mine["config/activation"]) <= {"relu", "gelu"}, mine  # the new hyperparameter, searched
    assert "config/activation" in shown(cell(notebook, "mine.leaderboard"), "text/html")
