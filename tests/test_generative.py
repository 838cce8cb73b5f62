"""The generative models (vae, gan, cgan) and the Fréchet distance they are searched on, on the generated
IDX fixture (each class a bright square at its own place, on noise)."""

import dataclasses

import pytest
import torch

from tests.helpers import retrained_run
from trainables import cgan, common, frechet, gan, vae
from tunelab import cache, data as datasets
from tunelab.report import comparison, report
from tunelab.store import runs


@pytest.fixture(scope="module")
def fixture_data(fixture_root):
    return datasets.load_dataset("fashion_mnist", fixture_root, "search")


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    gen = torch.Generator().manual_seed(0)
    mean_a, mean_b = torch.tensor([0.0, 1.0, 2.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 0.5])
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5, 1.0]), torch.tensor([2.0, 1.0, 0.5, 3.0])
    a = mean_a + std_a * torch.randn(200_000, 4, generator=gen)
    b = mean_b + std_b * torch.randn(200_000, 4, generator=gen)
    # for diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2 = 5.25 + 6
    expected = ((mean_a - mean_b) ** 2).sum() + ((std_a - std_b) ** 2).sum()
    assert frechet.frechet_distance(a, b) == pytest.approx(expected.item(), rel=0.02)
    assert frechet.frechet_distance(b, a) == pytest.approx(frechet.frechet_distance(a, b), rel=1e-6)
    assert frechet.frechet_distance(a, a) < 1e-4
    rotated = a @ torch.linalg.qr(torch.randn(4, 4, generator=gen))[0]  # full covariances, same spectrum
    assert frechet.frechet_distance(a, rotated) > 1  # the distance sees the covariances' directions


def test_scores_tell_real_images_from_noise_and_classes_apart(fixture_data, cache_root):
    x, y = fixture_data.splits["val"]
    cached_before = set(cache_root.glob("*.pt"))
    real = frechet.scores(common.to_float(x), fixture_data, "val", labels=y)
    assert real["frechet"] < 1e-4 * real["frechet_real"]  # the split's own images
    assert real["class_acc_real"] > 0.9 and real["class_acc"] == real["class_acc_real"]
    wrong = frechet.scores(common.to_float(x), fixture_data, "val", labels=(y + 1) % 10)
    assert wrong["class_acc"] < 0.2
    noise = frechet.scores(torch.rand(x.shape), fixture_data, "val")
    assert noise["frechet"] > 10 * real["frechet_real"] > 0
    assert noise["frechet_real"] == real["frechet_real"]  # the same reference sample every time
    assert len(set(cache_root.glob("*.pt")) - cached_before) <= 1  # trained once (or earlier in the session)


def test_the_classifier_is_cached_per_training_set(fixture_data, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    x, y = fixture_data.splits["train"]
    fewer = datasets.Data("fashion_mnist", {"train": (x[:300], y[:300])}, fixture_data.classes, x.device)
    first = frechet.classifier(fixture_data)
    again = frechet.classifier(fixture_data)
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), again.parameters()))
    with torch.no_grad():  # as in an evaluation
        frechet.classifier(fewer)
    assert len(list(tmp_path.glob("frechet_classifier_*.pt"))) == 2
    assert cache.cache_dir() == tmp_path


def test_discriminator_losses_reward_telling_real_from_fake():
    sure, unsure = (torch.full((4,), 3.0), torch.full((4,), -3.0)), (torch.zeros(4), torch.zeros(4))
    for kind in gan.LOSSES:
        assert gan.discriminator_loss(kind, *sure) < gan.discriminator_loss(kind, *unsure)
        assert gan.generator_loss(kind, torch.full((4,), 2.0)) < gan.generator_loss(kind, torch.zeros(4))


@pytest.mark.parametrize("norm,penalty", [(1.0, 0.0), (3.0, 4.0)])
def test_gradient_penalty_of_a_linear_critic(norm, penalty):
    w = torch.randn(1, 1, 28, 28)
    w *= norm / w.norm()

    def critic(images, labels):
        return (images * w).flatten(1).sum(1)

    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    assert gan.gradient_penalty(critic, real, fake, None).item() == pytest.approx(penalty, abs=1e-4)


def test_wgan_gp_discriminator_has_no_batch_norm():
    config = {**gan.DEFAULTS, "loss": "wgan_gp", "d_norm": "batch"}
    d = gan.make_model(config, (1, 28, 28), 0).discriminator
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    images = torch.rand(4, 1, 28, 28)
    scores = d(images)
    assert torch.allclose(d(images[:1]), scores[:1], atol=1e-5)  # each score depends on its own image only


def test_cgan_label_conditions_both_networks():
    torch.manual_seed(0)
    model = gan.make_model(gan.DEFAULTS, (1, 28, 28), n_classes=10).eval()
    z = torch.randn(2, model.latent)
    a, b = torch.tensor([0, 0]), torch.tensor([3, 3])
    assert not torch.allclose(model.generator(z, a), model.generator(z, b))
    images = torch.rand(2, 1, 28, 28)
    assert not torch.allclose(model.discriminator(images, a), model.discriminator(images, b))


def test_gan_training_lowers_the_frechet_distance(fashion_root, fixture_root):
    if fashion_root == fixture_root:  # on the fixture's squares, too few steps teach a GAN nothing
        pytest.skip("needs the real Fashion-MNIST: set TUNELAB_DATA to a data root that holds it")
    data = datasets.load_dataset("fashion_mnist", fashion_root, "search", subset=0.05)
    torch.manual_seed(0)
    config = {**gan.DEFAULTS, "batch_size": 32}
    parts = gan.build(config, data)
    before = gan.evaluate(parts, data, "val")
    losses = gan.train_epoch(parts, data, config)  # 85 steps
    after = gan.evaluate(parts, data, "val")
    assert set(losses) == {"loss_d", "loss_g"}
    assert after["frechet"] < 0.85 * before["frechet"], (before, after)


def test_d_steps_longer_than_an_epoch_is_an_error(fixture_data):
    config = {**gan.DEFAULTS, "batch_size": 512, "d_steps": 5}
    with pytest.raises(ValueError, match="d_steps"):
        gan.train_epoch(gan.build(config, fixture_data), fixture_data, config)


def test_vae_metric_is_the_elbo_whatever_beta(fixture_data):
    torch.manual_seed(0)
    config = {**vae.DEFAULTS, "latent": 4, "hidden": 64, "epochs": 2}
    parts = vae.build(config, fixture_data)
    before = vae.evaluate(parts, fixture_data, "val")
    assert before["nelbo"] == pytest.approx(before["recon"] + before["kl"])
    trained = [vae.train_epoch(parts, fixture_data, config | {"beta": beta}) for beta in (1.0, 4.0)]
    assert trained[0]["loss"] == pytest.approx(trained[0]["nelbo"])
    assert trained[1]["loss"] == pytest.approx(trained[1]["recon"] + 4 * trained[1]["kl"])
    after = vae.evaluate(parts, fixture_data, "val")
    assert after["nelbo"] < before["nelbo"] and after["kl"] > 0
    assert vae.evaluate(parts, fixture_data, "val") == after  # a fixed draw of z: the same number twice


@pytest.mark.parametrize("latent,figure", [(2, "latent_map.png"), (3, "latent_tsne.png")])
def test_vae_latent_figure(latent, figure, fixture_root, tmp_path):
    data = datasets.load_dataset("fashion_mnist", fixture_root, "retrain")
    parts = vae.build({**vae.DEFAULTS, "latent": latent, "hidden": 32}, data)
    written = vae.figures(parts, data, tmp_path)
    assert {p.name for p in written.values()} == {"prior_samples.png", "reconstructions.png", figure}


def test_cgan_samples_cycle_through_the_classes(fixture_data):
    model = cgan.build(gan.DEFAULTS | {"g_width": 16}, fixture_data)["model"]
    images = cgan.sample(model, 25, seed=3)
    assert images.shape == (25, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, model.sample(25, torch.arange(25) % 10, seed=3))  # image i of class i mod 10


def test_cgan_report_sets_the_gan_runs_samples_beside_its_own(env, fixture_root):
    results = env / "results"
    for experiment in ("fashion_gan", "fashion_cgan"):
        retrained_run(results, experiment, fixture_root, g_width=16, d_width=16)
    retrained_run(results, "fashion_cnn", fixture_root)  # on the same data set, but a classifier
    run = runs.open_run("fashion_cgan", results)
    assert run.spec.compare_with == ["fashion_gan"]  # search_spaces/fashion_cgan.yaml's
    run.spec = dataclasses.replace(run.spec, compare_with=["fashion_gan", "fashion_cnn", "nothing"])
    best = comparison.retrained(run)
    run.report_dir.mkdir()
    assert list(cgan.figures(best.parts, best.data, run.report_dir)) == ["cGAN samples, one row per class"]  # its own

    heading, left_out, (kind, caption, path) = report._comparison(best, run.report_dir)
    assert heading == ("h3", "Compared with fashion_gan, fashion_cnn, nothing")
    assert left_out == ("p", "Left out of the comparison: `fashion_cnn` (trains `cnn_classifier` on `fashion_mnist`: "
                             "not comparable); `nothing` (run `tunelab search nothing`, then retrain it).")  # fmt: skip
    assert kind == "img" and caption.startswith("40 samples of each of fashion_cgan, fashion_gan (seed 1)")
    assert path == run.report_dir / "compare_samples.png" and path.stat().st_size > 5000
