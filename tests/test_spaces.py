import math
from pathlib import Path

import optuna.distributions as od
import pytest
import yaml

from tunelab.errors import UserError
from tunelab.spec import spaces

SPACES = sorted(spaces.SPACES_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_search_space_file_validates(path):
    spec = spaces.load_spec(str(path))
    assert spec.params and spec.metric.startswith("val_")
    if spec.baseline:
        assert set(spec.baseline) == set(spec.params)


SEARCHED = {"width": {"values": [16, 32]}}


def parse(parameters: dict, **top) -> spaces.Spec:
    raw = {"trainable": "cnn_classifier", "dataset": "fashion_mnist", "parameters": parameters, **top}
    return spaces.parse(raw, Path("exp.yaml"))


@pytest.mark.parametrize(
    "parameter, expected",
    [
        ({"values": [32, 64]}, od.CategoricalDistribution([32, 64])),
        ({"min": 0.1, "max": 0.5}, od.FloatDistribution(0.1, 0.5)),
        ({"distribution": "uniform", "min": 0.1, "max": 0.5}, od.FloatDistribution(0.1, 0.5)),
        ({"distribution": "q_uniform", "min": 0.0, "max": 0.5, "q": 0.1}, od.FloatDistribution(0.0, 0.5, step=0.1)),
        ({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}, od.FloatDistribution(1e-4, 1e-1, log=True)),
        (
            {"distribution": "inv_log_uniform_values", "min": 1e-4, "max": 1e-1},
            od.FloatDistribution(1e-4, 1e-1, log=True),
        ),
        (
            {"distribution": "log_uniform", "min": math.log(1e-4), "max": math.log(1e-1)},
            od.FloatDistribution(1e-4, 1e-1, log=True),
        ),
    ],
)
def test_float_distributions_map_to_the_same_range(parameter, expected):
    got = parse({"dropout" if "values" not in parameter else "width": parameter}).params
    (d,) = got.values()
    if isinstance(expected, od.FloatDistribution):
        assert (d.log, d.step) == (expected.log, expected.step)
        assert math.isclose(d.low, expected.low) and math.isclose(d.high, expected.high)
    else:
        assert d == expected


@pytest.mark.parametrize(
    "parameter, expected",
    [
        ({"min": 16, "max": 64}, od.IntDistribution(16, 64)),
        ({"distribution": "int_uniform", "min": 16, "max": 64}, od.IntDistribution(16, 64)),
        ({"distribution": "q_uniform", "min": 16, "max": 64, "q": 16}, od.IntDistribution(16, 64, step=16)),
        ({"distribution": "q_log_uniform_values", "min": 16, "max": 256}, od.IntDistribution(16, 256, log=True)),
    ],
)
def test_integer_distributions_map_to_the_same_range(parameter, expected):
    assert parse({"batch_size": parameter}).params == {"batch_size": expected}


def test_constants_and_the_w_and_b_only_keys_are_accepted():
    spec = parse({"batch_size": {"value": 128}, "lr": {"distribution": "constant", "value": 0.01},
                  "width": {"values": [16, 32]}},
                 program="train.py", command=["${program}"], entity="me", project="p", name="n", run_cap=3)  # fmt: skip
    assert spec.constants == {"batch_size": 128, "lr": 0.01} and spec.run_cap == 3 and spec.project == "p"
    assert spec.config({})["batch_size"] == 128


def test_hyperband_maps_to_asha_rungs():
    spec = parse(SEARCHED, early_terminate={"type": "hyperband", "min_iter": 2, "eta": 3})
    assert spec.hyperband == {"min_iter": 2, "eta": 3}
    spec = parse(SEARCHED, early_terminate={"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3})
    assert spec.hyperband == {"min_iter": 3, "eta": 3}  # W&B's brackets 27/3 and 27/9: ASHA's rungs 3 and 9


def test_hyperband_refuses_unknown_keys_and_accepts_w_and_b_strict():
    with pytest.raises(UserError) as e:
        parse(SEARCHED, early_terminate={"type": "hyperband", "min_iter": 1, "etaa": 2})
    assert str(e.value) == (
        "exp.yaml: early_terminate: unknown key(s) etaa; allowed: eta, max_iter, min_iter, s, strict, type "
        "(W&B's strict is accepted and ignored: ASHA has no stricter rule)"
    )
    spec = parse(SEARCHED, early_terminate={"type": "hyperband", "min_iter": 1, "eta": 2, "strict": True})
    assert spec.hyperband == {"min_iter": 1, "eta": 2}


def test_resources_name_an_unknown_key():
    with pytest.raises(UserError) as e:
        parse(SEARCHED, resources={"cpu": 1, "gpus": 1})
    assert str(e.value) == "exp.yaml: resources: unknown key(s) gpus; allowed: cpu, gpu"
    with pytest.raises(UserError, match="resources: must be a mapping with the keys cpu and gpu"):
        parse(SEARCHED, resources=[1])


def test_a_file_that_searches_nothing_is_refused():
    with pytest.raises(UserError, match="parameters: nothing is searched"):
        parse({"lr": {"value": 0.01}})


@pytest.mark.parametrize("early_terminate", [{"max_iter": 27}, {"max_iter": 27, "s": 0}, {"max_iter": 8, "s": 2}])
def test_hyperband_max_iter_needs_brackets_that_fit(early_terminate):
    with pytest.raises(UserError, match="early_terminate: max_iter needs s .* and max_iter >= eta"):
        parse(SEARCHED, early_terminate={"type": "hyperband", "eta": 3, **early_terminate})


def test_a_w_and_b_epochs_value_sets_the_epochs_per_trial():
    spec = parse({"epochs": {"value": 5}, **SEARCHED})
    assert spec.max_epochs == 5 and spec.config({})["epochs"] == 5 and "epochs" not in spec.constants
    assert parse({"epochs": {"value": 5}, **SEARCHED}, max_epochs=5).max_epochs == 5
    with pytest.raises(UserError, match="parameters.epochs: 5 and max_epochs 8 both set the epochs per trial"):
        parse({"epochs": {"value": 5}, **SEARCHED}, max_epochs=8)


@pytest.mark.parametrize("searched", [{"values": [5, 10]}, {"distribution": "int_uniform", "min": 2, "max": 9}])
def test_a_searched_epochs_points_to_max_epochs_and_early_termination(searched):
    with pytest.raises(UserError, match="parameters.epochs: epochs cannot be searched: .* set max_epochs: N"):
        parse({"epochs": searched})


def test_grid_counts_every_combination():
    parameters = {"width": {"values": [32, 64]}, "depth": {"distribution": "int_uniform", "min": 1, "max": 3}}
    spec = parse(parameters, method="grid")
    assert spec.run_cap == 6


def test_baseline_is_completed_with_defaults():
    spec = parse({"width": {"values": [16, 32]}, "lr": {"min": 0.0001, "max": 0.1}}, baseline={"width": 16})
    assert spec.baseline == {"width": 16, "lr": spec.config({})["lr"]}


@pytest.mark.parametrize(
    "parameters, top, message",
    [
        (
            {"lr": {"distribution": "uniformish", "min": 0.1, "max": 1}},
            {},
            "parameters.lr: unknown distribution 'uniformish'; allowed: constant",
        ),
        (
            {"lr": {"distribution": "normal", "mu": 0, "sigma": 1}},
            {},
            "parameters.lr: distribution 'normal' is not supported",
        ),
        ({"lr": {"min": 0.1, "max": 0.01}}, {}, "parameters.lr: min (0.1) > max (0.01)"),
        (
            {"lr": {"values": ["fast", 0.1]}},
            {},
            "parameters.lr: values ['fast'] have the wrong type; expected a number",
        ),
        (
            {"batch_norm": {"values": [1, 0]}},
            {},
            "parameters.batch_norm: values [1, 0] have the wrong type; expected a boolean",
        ),
        (
            {"width": {"distribution": "uniform", "min": 8, "max": 64.5}},
            {},
            "parameters.width: this hyperparameter is an integer",
        ),
        ({"colour": {"values": [1]}}, {}, "parameters.colour: cnn_classifier has no hyperparameter 'colour'; it has: "),
        (
            {"augment": {"values": ["flip", "rotate"]}},
            {},
            "parameters.augment: 'rotate' not allowed; allowed: none, flip, crop, flip_crop, affine, flip_affine",
        ),
        ({"optimizer": {"value": "adamx"}}, {}, "parameters.optimizer: 'adamx' not allowed; allowed: sgd, adam, adamw"),
        ({"lr": {"vals": [1]}}, {}, "parameters.lr: unknown key(s) vals"),
        ({}, {"methd": "bayes"}, "methd: unknown key; allowed:"),
        ({}, {"method": "bohb"}, "method: 'bohb' is not allowed; allowed: bayes"),
        ({}, {"max_epochs": "ten"}, "max_epochs: must be an integer >= 1, not 'ten'"),
        ({}, {"trainable": "resnet9000"}, "trainable: unknown trainable 'resnet9000'; known:"),
        ({}, {"early_terminate": {"type": "median"}}, "early_terminate: must be {type: hyperband"),
        ({"lr": {"min": 0.1, "max": 0.2}}, {"method": "grid"}, "parameters.lr: method grid needs discrete values"),
        (
            {"width": {"values": [16, 32]}},
            {"baseline": {"width": 48}},
            "baseline.width: 48 is outside the searched range",
        ),
    ],
)
def test_bad_input_names_the_file_the_key_and_what_is_allowed(parameters, top, message):
    with pytest.raises(UserError) as e:
        parse(parameters, **top)
    assert str(e.value).startswith("exp.yaml: ") and message in str(e.value)


def test_yaml_syntax_error_gives_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("trainable: cnn_classifier\nparameters:\n  lr: {min: 0.1, max: [\n")
    with pytest.raises(UserError, match=rf"{path}:4: YAML syntax error"):
        spaces.load_spec(str(path))


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown experiment 'fashion_cnm'; known: .*fashion_cnn"):
        spaces.load_spec("fashion_cnm")


def test_a_w_and_b_sweep_file_needs_only_trainable_and_dataset(tmp_path):
    sweep = {"program": "train.py", "method": "random", "metric": {"name": "val_acc", "goal": "maximize"},
             "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
                            "batch_size": {"distribution": "q_log_uniform_values", "min": 32, "max": 256},
                            "dropout": {"values": [0.1, 0.3]}},
             "early_terminate": {"type": "hyperband", "min_iter": 1}}  # fmt: skip
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep | {"trainable": "cnn_classifier", "dataset": "fashion_mnist"}))
    spec = spaces.load_spec(str(path))
    assert spec.method == "random" and set(spec.params) == {"lr", "batch_size", "dropout"}
    assert spec.hyperband["eta"] == 3
