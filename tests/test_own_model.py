"""`tunelab new NAME [--like T]` and `tunelab check FILE.py` in a student's folder outside the repository.

Module names differ from test to test: a file's module is imported by its name, once per process.
"""

import pytest
import torch
import yaml

import trainables
from tests.helpers import REPO
from tunelab import scaffold
from tunelab.cli import main
from tunelab.data import SOURCES
from tunelab.engine import checks
from tunelab.spec import spaces
from tunelab.trainable import protocol

# the whole check for two thin copies (cnn_classifier's: test_new_then_check_passes); for the others, loading (time)
FULL_CHECK = ("thought_vector_ae", "cgan")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A student's folder outside the repository, as the working directory."""
    assert REPO not in tmp_path.parents
    monkeypatch.chdir(tmp_path)
    return tmp_path


def new(name: str, *like: str) -> int:
    return main(["new", name, *(["--like", *like] if like else [])])


def check_lines(out: str) -> dict[str, str]:
    """`tunelab check`'s lines: check -> its status and message."""
    return {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines() if line.startswith("  ")}


def test_new_then_check_passes(folder, capsys):
    assert new("my_cnn") == 0
    out = capsys.readouterr().out
    assert "tunelab check my_cnn.py" in out
    assert "tunelab search my_cnn.yaml --time-budget 10m" in out
    source = (folder / "my_cnn.py").read_text()
    assert source.startswith("# my_cnn.py: ") and "trainables/cnn_classifier.py" in source.splitlines()[0]
    assert source.endswith((REPO / "trainables" / "cnn_classifier.py").read_text())
    raw = yaml.safe_load((folder / "my_cnn.yaml").read_text())
    header = (folder / "my_cnn.yaml").read_text().split("\n\n")[0]
    assert raw["trainable"] == "my_cnn.py" and "(search_spaces/fashion_cnn.yaml)" in header
    assert "`tunelab search my_cnn.yaml --time-budget 10m`" in header  # the wide space, planned to the machine
    spec = spaces.load_spec("my_cnn.yaml")
    assert spec.trainable == str(folder / "my_cnn.py") and spec.name == "my_cnn"
    assert spec.params.keys() == spaces.load_spec("fashion_cnn").params.keys()

    assert main(["check", "my_cnn.py"]) == 0
    lines = check_lines(capsys.readouterr().out)
    assert list(lines) == ["protocol", *(c.name for c in checks.CHECKS)] and set(lines.values()) == {"ok"}


@pytest.mark.parametrize("like", trainables.NAMES)
def test_new_like_every_builtin(like, folder, capsys):
    name = f"own_{like}"
    assert new(name, like) == 0
    experiment = yaml.safe_load((folder / f"{name}.yaml").read_text())
    assert experiment["trainable"] == f"{name}.py"
    spec = spaces.load_spec(f"{name}.yaml")  # loads and checks the copy, as `tunelab search` does
    builtin = protocol.load_trainable(like)
    assert spec.trainable == str(folder / f"{name}.py") and spec.defaults == builtin.defaults
    assert protocol.load_trainable(spec.trainable).module.__file__ == str(folder / f"{name}.py")
    if like in FULL_CHECK:
        capsys.readouterr()
        assert main(["check", f"{name}.py"]) == 0, capsys.readouterr()


def test_the_quickest_experiment_is_copied():
    assert scaffold.experiment_of("cnn_classifier") == "fashion_cnn"  # its wide space, planned with --time-budget
    assert scaffold.experiment_of("text_cnn") == "sentiment140_cnn"  # a time budget of 600 s, of 10 x 5 epochs


def broken(folder, name: str, *edits: tuple[str, str]) -> str:
    """A copy of cnn_classifier made by `tunelab new`, with each (old, new) of ``edits`` replaced once."""
    assert new(name) == 0
    path = folder / f"{name}.py"
    source = path.read_text()
    for old, replacement in edits:
        assert old in source
        source = source.replace(old, replacement, 1)
    path.write_text(source)
    return f"{name}.py"


def test_check_names_a_missing_build(folder, capsys):
    file = broken(folder, "no_build", ("def build(config: dict, data: Data)", "def make(config: dict, data: Data)"))
    capsys.readouterr()
    assert main(["check", file]) == 2
    captured = capsys.readouterr()
    lines = check_lines(captured.out)
    assert lines["protocol"].startswith("FAILED: trainable 'no_build'")
    assert "missing build(config, data)" in captured.out
    assert all(lines[c.name].startswith("skipped") for c in checks.CHECKS)
    assert "1 of 7 checks failed: protocol" in captured.err


def test_check_names_a_misspelled_hook(folder, capsys):
    file = broken(folder, "misspelled", ("def predict_proba(", "def predict_probs("))
    capsys.readouterr()
    assert main(["check", file]) == 2
    captured = capsys.readouterr()
    assert check_lines(captured.out)["protocol"].startswith("FAILED")
    assert "'predict_probs' is not part of the protocol: did you mean predict_proba?" in captured.out


def test_check_names_a_parameter_without_gradient(folder, capsys):
    unused = ("class Unused(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.scale = nn.Parameter(torch.ones(1))\n\n    def forward(self, x):\n        return x\n\n\n"
              "def make_model(")  # fmt: skip
    file = broken(
        folder,
        "no_gradient",
        ("def make_model(", unused),
        ("    return nn.Sequential(*layers)", "    return nn.Sequential(Unused(), *layers)"),
    )
    capsys.readouterr()
    assert main(["check", file]) == 2
    captured = capsys.readouterr()
    lines = check_lines(captured.out)
    assert lines.pop("gradients").startswith("FAILED: no gradient reached 0.scale (not used in the loss")
    assert set(lines.values()) == {"ok"}
    assert "1 of 7 checks failed: gradients" in captured.err


def test_check_says_where_a_trainable_raised(folder, capsys):
    file = broken(folder, "crashes", ("    layers.append(nn.Flatten())", "    layers.append(nn.Flatten(start_dim=2))"))
    capsys.readouterr()
    assert main(["check", file]) == 2
    lines = check_lines(capsys.readouterr().out)
    assert lines["build"].startswith("FAILED: parts['model'] on example_input(parts, data): RuntimeError: mat1")
    assert lines["train_epoch"] == "skipped: build failed" and lines["gradients"] == "skipped: build failed"

    file = broken(folder, "typo", ('    if config["kernel_size"] % 2', '    if config["kernel_sise"] % 2'))
    line = next(i for i, text in enumerate((folder / file).read_text().splitlines(), 1) if "kernel_sise" in text)
    capsys.readouterr()
    assert main(["check", file]) == 2
    build = check_lines(capsys.readouterr().out)["build"]
    assert build == f"FAILED: KeyError: 'kernel_sise' (typo.py:{line}, in build)"


def test_check_of_a_file_that_does_not_exist(folder, capsys):
    assert main(["check", "nothing_here.py"]) == 2
    assert "no such file: nothing_here.py" in capsys.readouterr().err


def test_new_refuses_to_overwrite(folder, capsys):
    (folder / "taken.yaml").write_text("mine\n")
    assert new("taken") == 2
    assert "taken.yaml already exists: not overwritten" in capsys.readouterr().err
    assert (folder / "taken.yaml").read_text() == "mine\n" and not (folder / "taken.py").exists()
    (folder / "taken.yaml").unlink()
    assert new("taken") == 0
    assert new("taken", "gan") == 2
    assert "taken.py and taken.yaml already exist" in capsys.readouterr().err


@pytest.mark.parametrize("name,why", [
    ("my-cnn", "not a valid Python module name"), ("2cnn", "not a valid Python module name"),
    ("class", "not a valid Python module name"), ("json", "would shadow the importable module 'json'"),
    ("torch", "would shadow the importable module 'torch'"), ("tunelab", "would shadow"),
    ("cnn_classifier", "a built-in trainable's name"),
])  # fmt: skip
def test_new_refuses_bad_names(name, why, folder, capsys):
    assert new(name) == 2
    assert why in capsys.readouterr().err
    assert not list(folder.iterdir())


def test_new_refuses_an_unknown_like(folder, capsys):
    assert new("mine", "resnet") == 2
    err = capsys.readouterr().err
    assert "unknown trainable 'resnet' for --like" in err and ", ".join(trainables.NAMES) in err
    assert not list(folder.iterdir())


@pytest.mark.parametrize("dataset,shape,labels", [
    ("fashion_mnist", (64, 1, 28, 28), (64,)), ("pneumoniamnist", (64, 1, 28, 28), (64,)),
    ("chest_xray", (64, 1, 224, 224), (64,)), ("imdb", (64,), (64,)), ("weather_tweets", (64,), (64, 15)),
])  # fmt: skip
def test_tiny_data_is_shaped_like_the_data_set(dataset, shape, labels):
    data = checks.tiny_data(dataset)
    x, y = data.splits["train"]
    assert tuple(x.shape) == shape and tuple(y.shape) == labels and set(data.splits) == {"train", "val", "test"}
    assert data.classes == SOURCES[dataset].classes
    if y.ndim == 2:  # soft labels: a share per class
        assert y.dtype == torch.float32 and torch.allclose(y.sum(1), torch.ones(64))
    else:
        assert y.dtype == torch.int64 and set(y.tolist()) == set(range(len(data.classes)))


def test_check_of_a_text_model_on_soft_labels(folder, capsys):
    def weather(name: str, metric: str, mode: str) -> str:
        assert new(name, "text_cnn") == 0
        path = folder / f"{name}.py"
        edits = {'DATASET = "sentiment140"': 'DATASET = "weather_tweets"', 'METRIC = "val_acc"': f'METRIC = "{metric}"',
                 'MODE = "max"': f'MODE = "{mode}"'}  # fmt: skip
        source = path.read_text()
        for old, replacement in edits.items():
            source = source.replace(old, replacement, 1)
        path.write_text(source)
        capsys.readouterr()
        return path.name

    assert main(["check", weather("weather_acc", "val_acc", "max")]) == 2  # soft labels: no accuracy
    lines = check_lines(capsys.readouterr().out)
    assert lines["evaluate"].startswith("FAILED: evaluate(parts, data, 'val') has no 'acc' (METRIC val_acc): [")
    assert main(["check", weather("weather_rmse", "val_rmse", "min")]) == 0
    assert "soft labels over 15 classes" in capsys.readouterr().out
