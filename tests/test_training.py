import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fedmd_ray
from fedmd_ray import training
from fedmd_ray.models import build_model


def _blobs(n=256, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    prototypes = torch.rand(classes, 1, 8, 8, generator=g)  # one random image per class
    x = prototypes[y] + torch.randn(n, 1, 8, 8, generator=g) * 0.1
    return x, y


def test_digest_lowers_the_distance_to_the_consensus():
    torch.manual_seed(0)
    model = build_model("cnn2-8-16", (1, 8, 8), 4)
    x, y = _blobs()
    consensus = F.one_hot(y, 4).float() * 6 - 2  # a teacher that is learnable from x
    loss_fn = F.l1_loss
    before = F.l1_loss(training.class_scores(model, x, batch_size=64), consensus).item()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    training.train_epochs(model, opt, x, consensus, loss_fn, epochs=5, batch_size=64)
    after = F.l1_loss(training.class_scores(model, x, batch_size=64), consensus).item()
    assert after < 0.8 * before


@pytest.mark.parametrize("name", ["l1", "mse", "kl"])
def test_digest_losses_are_zero_at_the_target(name):
    logits = torch.randn(5, 3)
    assert training.consensus_distance(name, logits, logits.clone(), temperature=2.0).abs().item() < 1e-6


def test_kl_softens_by_temperature_and_rescales_by_its_square():
    a, b = torch.randn(8, 3), torch.randn(8, 3)
    manual = F.kl_div(F.log_softmax(a / 3, 1), F.softmax(b / 3, 1), reduction="batchmean") * 9
    assert torch.allclose(training.consensus_distance("kl", a, b, 3.0), manual)


def test_one_pass_over_a_labelled_set_gives_accuracy_loss_and_the_classes_predicted():
    torch.manual_seed(0)
    model = build_model("mlp-32", (1, 8, 8), 4)
    x, y = _blobs(n=100)
    scored = training.evaluate(model, x, y, batch_size=7)  # batches that do not divide the set
    with torch.no_grad():
        logits = model.eval()(x)
    guess = logits.argmax(dim=1)
    assert torch.equal(scored.predicted, torch.bincount(guess, minlength=4))
    assert scored.accuracy == int((guess == y).sum()) / len(y)
    assert scored.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


def test_own_class_share_is_the_share_of_predictions_naming_a_class_the_party_holds():
    predicted = torch.tensor([5, 0, 3, 2])  # 10 predictions: five of class 0, three of 2, two of 3
    held, share = training.own_class_share(torch.tensor([2, 2, 0]), predicted)
    assert held == 2
    assert share == torch.tensor(8 / 10, dtype=torch.float32).item()  # a float32 share, as it was reported
    assert training.own_class_share(torch.tensor([1]), torch.zeros(4, dtype=torch.int64)) == (1, 0.0)


def test_without_batch_norm_there_is_no_gap_and_no_copy_of_the_model(monkeypatch):
    import copy

    model = build_model("mlp-32", (1, 8, 8), 4)
    x, y = _blobs(n=64)
    monkeypatch.setattr(copy, "deepcopy", lambda *_: pytest.fail("copied a model without batch norm"))
    accuracy = training.evaluate(model, x, y, batch_size=16).accuracy
    assert training.batch_norm_gap(model, x, y, batch_size=16) == (accuracy, accuracy)


def test_fit_classifier_learns_and_stops_early():
    torch.manual_seed(0)
    model = build_model("mlp-32", (1, 8, 8), 4)
    x, y = _blobs()
    epochs = training.fit_classifier(
        model, x, y, epochs=50, batch_size=32, lr=1e-2, val=(x, y), patience=2, min_delta=0.001
    )
    accuracy, loss, _ = training.evaluate(model, x, y, batch_size=100)
    assert accuracy > 0.9 and loss < 0.5
    assert epochs < 50  # converged data: early stopping ends it


def test_read_only_arrays_are_wrapped_without_warning():
    array = np.ones((2, 3), dtype=np.float32)
    array.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = training.as_tensor(array, torch.device("cpu"))
    assert tensor.shape == (2, 3)


def test_output_penalty_only_for_regularised_models():
    paper = build_model("paper-cnn2-128-256", (1, 28, 28), 16)
    small = build_model("cnn2-8-16", (1, 28, 28), 16)
    assert training.output_penalty(paper).item() > 0
    assert training.output_penalty(small) == 0.0


def test_auto_shift_is_two_pixels_per_28_of_the_side_and_a_number_is_itself():
    assert training.shift_pixels("auto", 28, 28) == 2  # the recipe's measured 2 pixels, on MNIST's size
    assert training.shift_pixels("auto", 32, 32) == 2  # CIFAR: 2.3 rounds to 2
    assert training.shift_pixels("auto", 8, 8) == 1  # the quick preset's digits: a quarter of them would be 2
    assert training.shift_pixels("auto", 64, 28) == 2  # the smaller side sets it
    assert training.shift_pixels("auto", 3, 3) == 1  # at least one pixel
    assert training.shift_pixels(3, 8, 8) == 3 and training.shift_pixels(0, 28, 28) == 0  # a number as given


def test_a_run_with_auto_shift_on_8x8_images_is_the_run_with_one_pixel():
    drop = ["run_id", "seconds"]
    base = fedmd_ray.preset("quick", rounds=2, backend="local", torch_threads=1)
    auto = fedmd_ray.run(base.replace(revisit_shift="auto"), verbose=False).drop_columns(drop)
    one = fedmd_ray.run(base.replace(revisit_shift=1), verbose=False).drop_columns(drop)
    assert auto.to_pylist() == one.to_pylist()


def test_random_shift_moves_each_image_by_its_own_offset_within_the_bound_and_repeats_the_border():
    """`revisit_shift`: every shifted image is its original moved by (dy, dx) in [-1, 1]^2, the
    edge rows/columns repeated into the gap; images get different offsets; a seed repeats them."""
    x = torch.rand(64, 2, 6, 7)
    torch.manual_seed(0)
    shifted = training.random_shift(x, 1)
    torch.manual_seed(0)
    assert torch.equal(training.random_shift(x, 1), shifted)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    offsets = set()
    for i in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(3)
            for dx in range(3)
            if torch.equal(shifted[i], padded[i, :, dy : dy + 6, dx : dx + 7])
        ]
        assert found, f"image {i} is not a shift of at most one pixel of its original"
        offsets.add(found[0])
    assert len(offsets) > 3  # 9 possible offsets, drawn per image
