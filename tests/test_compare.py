"""`tunelab compare`: several runs' retrained models side by side, by what the models are (ROC curves of
classifiers, reconstructions of autoencoders, samples of generative models), on runs made without a search."""

import pandas as pd
import pytest

from tests.helpers import retrained_run
from tunelab.cli import main
from tunelab.errors import UserError
from tunelab.report import comparison
from tunelab.spec import spaces
from tunelab.store import runs


def unsearched(env, experiment: str, data_root) -> runs.StoredRun:
    run = runs.StoredRun(env / "results" / experiment, spaces.load_spec(experiment), runs.Options(), data_root)
    run.save()
    return run


@pytest.mark.parametrize("experiments,hook", [
    (["fashion_cnn", "fashion_ablation", "fashion_transfer"], "predict_proba"),
    (["mnist_conv_ae", "mnist_mlp_ae", "mnist_multitask_ae"], "reconstruct"),
    (["fashion_vae", "fashion_conv_ae"], "reconstruct"),  # a VAE beside an autoencoder: reconstructions
    (["fashion_vae", "fashion_gan", "fashion_cgan"], "sample"),  # beside GANs: samples
    (["fashion_vae", "fashion_cnn"], None),
])  # fmt: skip
def test_the_comparison_is_the_first_hook_all_the_runs_have(tmp_path, experiments, hook):
    opened = [runs.StoredRun(tmp_path / e, spaces.load_spec(e), runs.Options(), tmp_path) for e in experiments]
    assert comparison.hook(opened) == hook


def test_compare_refuses_runs_on_different_data_sets_or_of_different_kinds(env, fixture_root, capsys):
    for experiment in ("mnist_conv_ae", "fashion_cnn", "fashion_gan", "fashion_transfer"):
        unsearched(env, experiment, fixture_root)
    refusals = {
        ("mnist_conv_ae", "fashion_cnn"): "runs on different data sets do not compare: mnist_conv_ae (mnist), "
                                          "fashion_cnn (fashion_mnist)",
        ("fashion_cnn", "fashion_transfer", "fashion_gan"): "runs of different kinds do not compare: fashion_cnn "
            "(cnn_classifier: ROC curves); fashion_transfer (transfer: ROC curves); fashion_gan (gan: samples)",
        ("fashion_cnn", "fashion_cnn"): "compare needs two or more different runs, not fashion_cnn fashion_cnn",
        ("fashion_cnn", "fashion_transfer"): "not retrained yet: fashion_cnn, fashion_transfer; run `tunelab retrain "
                                             "fashion_cnn` first",
    }  # fmt: skip
    for names, message in refusals.items():
        assert main(["compare", *names]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not list((env / "results").glob("compare_*"))  # refused before anything is loaded or written


def test_compare_sets_autoencoders_reconstructions_of_the_same_test_images_side_by_side(env, fixture_root, capsys):
    for experiment in ("mnist_conv_ae", "mnist_mlp_ae"):
        retrained_run(env / "results", experiment, fixture_root)
    assert main(["compare", "mnist_conv_ae", "mnist_mlp_ae"]) == 0
    out = env / "results" / "compare_mnist_conv_ae_vs_mnist_mlp_ae"
    printed = capsys.readouterr().out
    assert "The same test images reconstructed by mnist_conv_ae, mnist_mlp_ae" in printed
    assert str(out / "compare_reconstructions.png") in printed and "Table" not in printed
    assert (out / "compare_reconstructions.png").stat().st_size > 5000
    assert {p.name for p in out.iterdir()} == {"compare_reconstructions.png"}  # no table: no auc.csv


def test_compare_image_classifiers_roc_curves_and_aucs(env, fixture_root, capsys):
    for experiment in ("fashion_cnn", "fashion_ablation"):
        retrained_run(env / "results", experiment, fixture_root)
    out, result = comparison.compare([runs.open_run(e, env / "results") for e in ("fashion_cnn", "fashion_ablation")],
                                     env / "results")  # fmt: skip
    assert result.hook == "predict_proba" and out.name == "compare_fashion_cnn_vs_fashion_ablation"
    table = pd.read_csv(out / "auc.csv", index_col="metric")
    assert list(table.columns) == ["fashion_cnn (cnn_classifier)", "fashion_ablation (examples_net)"]
    assert {"AUC T-shirt/top", "AUC Ankle boot", "AUC macro", "AUC micro", "test_acc", "test_loss"} <= set(table.index)
    assert table.loc[["AUC macro", "test_acc"]].stack().between(0, 1).all()
    assert (out / "compare_roc.png").stat().st_size > 20_000 and (out / "auc.md").is_file()


def test_side_by_side_refuses_models_tested_on_different_test_splits(env, fixture_root, tmp_path_factory):
    from tests.helpers import write_mnist_like

    other_root = tmp_path_factory.mktemp("other")
    write_mnist_like(other_root / "mnist", n_test=100, seed=2)
    retrained_run(env / "results", "mnist_conv_ae", fixture_root)
    retrained_run(env / "results", "mnist_mlp_ae", other_root)
    with pytest.raises(UserError, match="'mnist_conv_ae' and 'mnist_mlp_ae' were not tested on the same test split"):
        comparison.compare(
            [runs.open_run(e, env / "results") for e in ("mnist_conv_ae", "mnist_mlp_ae")], env / "results"
        )
