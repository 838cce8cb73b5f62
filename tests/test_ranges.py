"""A trainable's RANGES and METRICS (tunelab/trainable/protocol.py): every built-in one declares them and its defaults
lie inside; a search space that reaches outside a range, or names a metric the trainable does not report, is refused
when it is read (or, for a trainable without METRICS, before Ray starts), with the file, the key and what is allowed."""

import re

import pytest
import yaml

import trainables
from tests.helpers import write_student_model
from tests.test_protocol import complete
from tunelab.cli import main
from tunelab.engine import checks
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.trainable import protocol
from tunelab.trainable.protocol import ProtocolError, Range


@pytest.mark.parametrize("name", trainables.NAMES)
def test_every_builtin_declares_a_range_for_each_number_holding_its_default(name):
    t = protocol.load_trainable(name)
    numbers = {k for k, v in t.defaults.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    assert set(t.ranges) == numbers
    assert all(t.defaults[k] in r for k, r in t.ranges.items())
    assert t.metric in t.metric_names and all(m.startswith(("val_", "train_")) for m in t.metric_names)


@pytest.mark.parametrize("experiment", spaces.experiments())
def test_every_shipped_space_lies_inside_the_ranges(experiment):
    spaces.load_spec(experiment)


@pytest.mark.parametrize(
    ("text", "inside", "outside", "words"),
    [(">= 1", (1, 64), (0, 0.5), "x >= 1"), ("> 0", (1e-9, 5), (0, -1), "x > 0"), ("[0, 1)", (0, 0.5), (1, -0.1),
     "0 <= x < 1"), ("(0, 1]", (1, 0.5), (0, 2), "0 < x <= 1"), ("< 2", (-3, 1.9), (2,), "x < 2")],
)  # fmt: skip
def test_a_range_string_is_parsed_once_and_said_in_words(text, inside, outside, words):
    r = Range.parse(text)
    assert all(x in r for x in inside) and not any(x in r for x in outside) and r.describe("x") == words


def space(tmp_path, parameters: dict, trainable: str = "cnn_classifier", **keys) -> str:
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"trainable": trainable, "parameters": parameters, **keys}))
    return str(path)


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"batch_size": {"values": [0, 64]}},
         "parameters.batch_size: value 0 is outside the allowed range batch_size >= 1"),
        ({"dropout": {"distribution": "uniform", "min": 0.2, "max": 1.5}},
         "parameters.dropout: uniform [0.2, 1.5] reaches outside the allowed range 0 <= dropout < 1"),
        ({"lr": {"distribution": "uniform", "min": -0.1, "max": 0.1}},
         "parameters.lr: uniform [-0.1, 0.1] reaches outside the allowed range lr > 0"),
        ({"width": {"value": 0}}, "parameters.width: value 0 is outside the allowed range width >= 1"),
        ({"depth": {"distribution": "int_uniform", "min": 0, "max": 3}},
         "parameters.depth: int_uniform [0, 3] reaches outside the allowed range depth >= 1"),
        ({"dropout": {"values": [0.5, 1.0, 2.0]}},
         "parameters.dropout: values 1.0, 2.0 are outside the allowed range 0 <= dropout < 1"),
    ],
)  # fmt: skip
def test_a_space_reaching_outside_a_range_is_refused(tmp_path, parameter, message):
    path = space(tmp_path, {"weight_decay": {"values": [0.0, 1e-4]}} | parameter)
    with pytest.raises(UserError) as refused:
        spaces.load_spec(path)
    assert str(refused.value) == f"{path}: {message}"


def test_a_baseline_outside_the_range_is_refused_with_its_distribution(env, tmp_path, capsys):
    parameters = {"dropout": {"values": [0.2, 1.5]}, "lr": {"values": [0.01, 0.1]}}
    path = space(tmp_path, parameters, baseline={"dropout": 1.5, "lr": 0.01})
    assert main(["search", path]) == 2
    assert capsys.readouterr().err.strip() == (f"tunelab: error: {path}: parameters.dropout: value 1.5 is outside the "
                                               "allowed range 0 <= dropout < 1")  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ({"name": "val_accuracy"}, "metric.name: cnn_classifier reports no metric 'val_accuracy'; allowed: val_acc, "
         "val_loss, train_acc, train_loss, params, duration_s, epoch_s"),
        ([{"name": "val_acc"}, {"name": "val_auc", "goal": "maximize"}], "metric[1].name: cnn_classifier reports no "
         "metric 'val_auc'; allowed: "),
        ([], "metric: is an empty list; give {name: <metric>, goal: maximize|minimize} or a list of them"),
        ({}, "metric: must be {name: <metric>, goal: maximize|minimize}"),
        ([1, 2], "metric[0]: must be {name: <metric>, goal: maximize|minimize}"),
    ],
)  # fmt: skip
def test_a_metric_the_trainable_does_not_report_is_refused_when_read(env, tmp_path, capsys, metric, message):
    path = space(tmp_path, {"lr": {"values": [0.01, 0.1]}}, metric=metric)
    assert main(["search", path]) == 2  # before a run folder or Ray
    assert capsys.readouterr().err.startswith(f"tunelab: error: {path}: {message}")
    assert not (tmp_path / "results").exists()


def test_a_metric_the_harness_reports_is_allowed(tmp_path):
    metrics = [{"name": "val_acc"}, {"name": "params", "goal": "minimize"}, {"name": "duration_s", "goal": "minimize"}]
    assert spaces.load_spec(space(tmp_path, {"lr": {"values": [0.01, 0.1]}}, metric=metrics)).metrics[1:] == [
        "params", "duration_s"]  # fmt: skip


def test_without_metrics_one_epoch_on_tiny_data_finds_what_a_trainable_reports(tmp_path):
    folder = write_student_model(tmp_path / "hw", {"good": {"hidden": {"values": [8, 16]}}})
    path = folder / "typo.yaml"
    path.write_text(yaml.safe_dump({"trainable": "mlp.py", "metric": {"name": "val_accuracy"},
                                    "parameters": {"hidden": {"values": [8, 16]}}}))  # fmt: skip
    # no METRICS: read as they are
    good, typo = spaces.load_spec(str(folder / "good.yaml")), spaces.load_spec(str(path))
    trainable = protocol.load_trainable(good.trainable)
    assert not trainable.metric_names
    checks.check_search_metrics(good, trainable)
    with pytest.raises(UserError, match=re.escape(f"{path}: metric.name: mlp reports no metric 'val_accuracy'; "
                                                  "allowed: train_loss, ")) as refused:  # fmt: skip
        checks.check_search_metrics(typo, trainable)
    assert "val_acc, " in str(refused.value) and "params, duration_s" in str(refused.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"RANGES": {"lr": "[0, 0.01]"}}, "RANGES['lr'] (0 <= lr <= 0.01) does not hold its default 0.1"),
        ({"RANGES": {"lr": "0 < lr"}}, "RANGES['lr']: '0 < lr' is not a range; write '>= 1', '> 0', '<= 1', '< 1'"),
        ({"RANGES": {"lr": "[1, 0]"}}, "RANGES['lr']: '[1, 0]' is empty"),
        ({"RANGES": {"lr": (0, 1)}}, "RANGES['lr'] is (0, 1), not a string such as '>= 1', '> 0' or '[0, 1)'"),
        ({"RANGES": {"colour": "> 0"}}, "RANGES['colour']: 'colour' is not in DEFAULTS"),
        ({"DEFAULTS": {"opt": "adam", "epochs": 1}, "RANGES": {"opt": "> 0"}},
         "RANGES['opt']: its default 'adam' is not a number"),
        ({"RANGES": ">= 0"}, "RANGES must be a dict, not str"),
        ({"METRICS": ("val_loss",)}, "METRICS does not hold METRIC 'val_acc'"),
        ({"METRICS": ()}, "METRICS must be a non-empty tuple of metric names (str), not ()"),
        ({"METRICS": ["val_acc"]}, "METRICS must be a tuple, not list"),
    ],
)  # fmt: skip
def test_bad_ranges_or_metrics_fail_the_protocol_check(changes, message):
    with pytest.raises(ProtocolError, match=re.escape(message)):
        protocol.check("my_model", complete(**changes))


def test_a_copy_keeps_its_ranges_and_check_names_one_that_misses_its_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["new", "ranged_cnn"]) == 0 and main(["new", "misranged_cnn"]) == 0
    source = (tmp_path / "ranged_cnn.py").read_text()
    assert "\nRANGES = {" in source and "\nMETRICS = (" in source
    ranged = protocol.load_trainable(str(tmp_path / "ranged_cnn.py"))
    assert ranged.ranges == protocol.load_trainable("cnn_classifier").ranges
    (tmp_path / "misranged_cnn.py").write_text(source.replace('"dropout": "[0, 1)"', '"dropout": "(0.5, 1)"'))
    capsys.readouterr()
    assert main(["check", "misranged_cnn.py"]) == 2
    out = capsys.readouterr().out
    assert "  - RANGES['dropout'] (0.5 < dropout < 1) does not hold its default 0.25" in out
