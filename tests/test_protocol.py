"""The trainable protocol: every registered trainable follows it; a module that does not is refused, with what is
missing, misspelled or of the wrong type, and where."""

import os
import re
import types

import pytest

import trainables
from tunelab.trainable import protocol
from tunelab.trainable.protocol import ProtocolError


def module(**names) -> types.ModuleType:
    """A trainable module named my_model with the given names (functions count as its own)."""
    m = types.ModuleType("my_model")
    m.__file__ = "/somewhere/my_model.py"
    for name, value in names.items():
        if callable(value):
            value.__module__ = "my_model"
        setattr(m, name, value)
    return m


def complete(**changes) -> types.ModuleType:
    def build(config, data): ...
    def train_epoch(parts, data, config): ...
    def evaluate(parts, data, split): ...
    def figures(parts, data, outdir): ...

    names = {"DATASET": "mnist", "METRIC": "val_acc", "MODE": "max", "DEFAULTS": {"lr": 0.1, "epochs": 1},
             "build": build, "train_epoch": train_epoch, "evaluate": evaluate, "figures": figures}  # fmt: skip
    return module(**{k: v for k, v in (names | changes).items() if v is not None})


@pytest.mark.parametrize("name", trainables.NAMES)
def test_every_registered_trainable_follows_the_protocol(name):
    trainable = protocol.load_trainable(name)
    assert trainable.name == name and trainable.module is trainables.get(name)
    assert callable(trainable.predict) and callable(trainable.example_input)  # the defaults where it has none
    assert (trainable.outputs is None) == (trainable.metrics is None) == (trainable.ensemble is None)


def test_a_complete_module_loads_with_the_defaults_for_what_it_leaves_out():
    trainable = protocol.check("my_model", complete())
    assert trainable.defaults == {"lr": 0.1, "epochs": 1} and trainable.extra_datasets == ()
    assert trainable.prepare is None and not trainable.ensembles and not trainable.comparable
    assert not trainable.image_classifier


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"build": None}, "missing build(config, data)"),
        ({"DEFAULTS": None}, "missing DEFAULTS (a dict)"),
        ({"MODE": "best"}, "MODE must be 'max' or 'min', not 'best'"),
        ({"METRIC": 3}, "METRIC must be a str, not int"),
        ({"DEFAULTS": {"lr": [0.1], "epochs": 1}}, "DEFAULTS['lr'] is [0.1]; a hyperparameter's default is"),
        ({"DEFAULTS": {"lr": 0.1}}, "DEFAULTS has no 'epochs'"),
        (
            {"evaluate": lambda parts, data: None},
            "evaluate takes (parts, data); the protocol calls it as evaluate(parts, data, split)",
        ),
        ({"figures": "figures.png"}, "figures must be a function figures"),
        (
            {"predict_probs": lambda parts, data, split: None},
            "'predict_probs' is not part of the protocol: did you mean predict_proba?",
        ),
        (
            {"EXTRA_DATASET": ("mnist",)},
            "'EXTRA_DATASET' is not part of the protocol: did you mean EXTRA_DATASETS?",
        ),
        ({"EXTRA_DATASETS": "mnist"}, "EXTRA_DATASETS must be a tuple, not str"),
        ({"CHOICES": {"colour": ("red",)}}, "CHOICES['colour']: 'colour' is not in DEFAULTS"),
        (
            {"DEFAULTS": {"opt": "adam", "epochs": 1}, "CHOICES": {"opt": ("sgd",)}},
            "CHOICES['opt'] does not hold its default 'adam'",
        ),
        (
            {"outputs": lambda parts, data, split: None},
            "has outputs but not metrics, ensemble: an ensemble needs all of",
        ),
    ],
)  # fmt: skip
def test_a_module_off_the_protocol_is_refused_with_what_is_wrong(changes, message):
    with pytest.raises(ProtocolError, match=re.escape(message)) as refused:
        protocol.check("my_model", complete(**changes))
    assert "trainable 'my_model' (/somewhere/my_model.py) does not follow the protocol" in str(refused.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(ProtocolError) as refused:
        protocol.check("my_model", module(DATASET="mnist"))
    lines = str(refused.value).splitlines()[1:]
    assert len(lines) == 7 and all(line.startswith("  - missing ") for line in lines)


def test_an_unknown_name_lists_the_registered_ones():
    with pytest.raises(protocol.UnknownTrainable, match="unknown trainable 'cnn'; known: cgan, cnn_classifier"):
        protocol.load_trainable("cnn")


def test_a_trainable_file_edited_in_this_process_is_loaded_again(tmp_path, monkeypatch):
    """A notebook writes a model with %%writefile, searches it, edits it and searches again: the kernel's checks,
    calibration and retrain see the edit, as the new trial workers do."""
    from tunelab import scaffold

    monkeypatch.chdir(tmp_path)
    model, _, _ = scaffold.new("edited_cnn")
    first = protocol.load_trainable(str(model))
    assert protocol.load_trainable(str(model)) is first  # unchanged: the same, not imported again
    model.write_text(model.read_text() + "\nEDITED = True\n")
    later = model.stat().st_mtime_ns + 10**9  # a modification time of its own, however coarse the file system's
    os.utime(model, ns=(later, later))
    second = protocol.load_trainable(str(model))
    assert second is not first and second.module.EDITED and not hasattr(first.module, "EDITED")
