"""Cross-fitted dynamics: every sample recorded once per epoch by a model that never saw it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labeltrace.record import Recorder
from labeltrace.train import TrainConfig, protocol
from labeltrace.train.protocol import crossfit_recorded, stratified_folds

torch.set_num_threads(1)


def test_stratified_folds_balanced_and_seeded():
    y = np.repeat(np.arange(3), [10, 7, 5])
    f = stratified_folds(y, 5, seed=0)
    for c in range(3):
        counts = np.bincount(f[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(f, stratified_folds(y, 5, seed=0))
    assert not np.array_equal(f, stratified_folds(y, 5, seed=1))
    with pytest.raises(ValueError):
        stratified_folds(y[:3], 5, seed=0)


class Memorizer(nn.Module):
    """Looks samples up by an id feature: perfect on what it trained on, uniform elsewhere."""

    def __init__(self, n: int, k: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(n, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0].long()]


def test_held_out_predictions_never_come_from_a_model_that_trained_on_the_sample(tmp_path):
    n, k = 40, 2
    y = np.arange(n) % k
    x = torch.arange(n, dtype=torch.float32)[:, None]
    cfg = TrainConfig(epochs=3, batch_size=8, lr=5.0, momentum=0.0, weight_decay=0.0)
    rec, folds = crossfit_recorded(lambda f: Memorizer(n, k), x, y, num_classes=k, config=cfg, n_folds=4,
                                   progress=False)  # fmt: skip
    d = rec.dynamics()
    assert np.all(d.n_seen == 3)  # once per epoch
    # a memoriser never trained on the sample predicts uniformly: p(given) stays exactly 1/2
    np.testing.assert_allclose(d.mean("p_given"), 0.5, atol=1e-6)


def test_crossfit_learns_and_a_kill_mid_run_resumes_to_the_same_recording(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n, d_, k = 90, 5, 3
    y = rng.integers(0, k, n)
    x = torch.tensor(rng.normal(0, 3, (k, d_))[y] + rng.normal(0, 1, (n, d_)), dtype=torch.float32)

    def build(f):
        torch.manual_seed(f)
        return nn.Sequential(nn.Linear(d_, 16), nn.ReLU(), nn.Linear(16, k))

    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.1)
    full_ins = Recorder(n, k, keep_probs=1)
    full, _ = crossfit_recorded(build, x, y, num_classes=k, config=cfg, n_folds=3, progress=False, in_sample=full_ins)
    assert full.dynamics().mean("correct").mean() > 0.8  # held-out accuracy on separable data

    class Killed(Exception):
        pass

    real_run_epoch = protocol.run_epoch
    epochs_run: list[int] = []

    def dies_in_epoch_2(*a, epoch, **kw):  # the process dies during epoch 2 (after epochs 0, 1 finished)
        if epoch == 2:
            raise Killed
        epochs_run.append(epoch)
        return real_run_epoch(*a, epoch=epoch, **kw)

    monkeypatch.setattr(protocol, "run_epoch", dies_in_epoch_2)
    with pytest.raises(Killed):
        crossfit_recorded(build, x, y, num_classes=k, config=cfg, n_folds=3, progress=False,
                          in_sample=Recorder(n, k, keep_probs=1), checkpoint_dir=tmp_path)  # fmt: skip
    assert torch.load(tmp_path / "state.pt", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(protocol, "run_epoch", lambda *a, epoch, **kw: (epochs_run.append(epoch),
                                                                        real_run_epoch(*a, epoch=epoch, **kw))[1])
    epochs_run.clear()
    ins = Recorder(n, k, keep_probs=1)
    again, _ = crossfit_recorded(build, x, y, num_classes=k, config=cfg, n_folds=3, progress=False, in_sample=ins,
                                 checkpoint_dir=tmp_path)  # fmt: skip
    assert sorted(set(epochs_run)) == [2, 3]  # resumed: epochs 0 and 1 were not retrained
    for field in ("signed_entropy", "p_given", "margin"):
        np.testing.assert_allclose(again.dynamics().epochs(field), full.dynamics().epochs(field), rtol=1e-5,
                                   atol=1e-6, err_msg=field)  # fmt: skip
        np.testing.assert_allclose(ins.dynamics().epochs(field), full_ins.dynamics().epochs(field), rtol=1e-5,
                                   atol=1e-6, err_msg=field)  # fmt: skip


def test_in_sample_companion_records_the_training_side_and_resumes(tmp_path):
    n, k = 40, 2
    y = np.arange(n) % k
    x = torch.arange(n, dtype=torch.float32)[:, None]
    cfg = TrainConfig(epochs=3, batch_size=8, lr=5.0, momentum=0.0, weight_decay=0.0)
    ins = Recorder(n, k, keep_probs=1)
    rec, _ = crossfit_recorded(lambda f: Memorizer(n, k), x, y, num_classes=k, config=cfg, n_folds=4,
                               progress=False, in_sample=ins, checkpoint_dir=tmp_path)  # fmt: skip
    d = ins.dynamics()
    assert np.all(d.n_seen == 3)  # every epoch, the 3 models training on it (averaged within the epoch)
    # the memorisers learn their training samples: in-sample p(given) rises, held-out stays 1/2
    # (recorded in the forward pass, before each step)
    assert d.at("p_given", 0).max() <= 0.5 + 1e-6 and d.at("p_given", -1).min() > 0.7
    np.testing.assert_allclose(rec.dynamics().mean("p_given"), 0.5, atol=1e-6)
    again = Recorder(n, k, keep_probs=1)  # a restart finds every epoch done and restores both recorders
    crossfit_recorded(lambda f: Memorizer(n, k), x, y, num_classes=k, config=cfg, n_folds=4, progress=False,
                      in_sample=again, checkpoint_dir=tmp_path)  # fmt: skip
    np.testing.assert_allclose(again.dynamics().mean("p_given"), d.mean("p_given"))
    crossfit_recorded(lambda f: Memorizer(n, k), x, y, num_classes=k, config=cfg, n_folds=4, progress=False,
                      checkpoint_dir=tmp_path / "plain")  # fmt: skip
    with pytest.raises(ValueError, match="in_sample"):  # a checkpoint written without it cannot supply it
        crossfit_recorded(lambda f: Memorizer(n, k), x, y, num_classes=k, config=cfg, n_folds=4, progress=False,
                          in_sample=Recorder(n, k, keep_probs=1), checkpoint_dir=tmp_path / "plain")  # fmt: skip


class _Clock:
    """A clock that advances one second per epoch of one model trained (``tick``), not otherwise."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        return self.t


class _Killed(Exception):
    pass


def _data() -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    return torch.tensor(rng.normal(0, 3, (3, 8))[y] + rng.normal(0, 1, (60, 8)), dtype=torch.float32), y


@pytest.mark.parametrize("kind", ["crossfit", "in-sample"])
def test_a_resumed_recording_keeps_the_killed_epochs_times_and_accuracy(tmp_path, monkeypatch, kind):
    """A recording resumed from a checkpoint reports the whole training's seconds and the same
    final accuracy as an uninterrupted one (the checkpoint keeps them), not only the resumed part's."""
    from labeltrace.train import loop
    from labeltrace.train.recipe import NetworkSpec

    torch.set_num_threads(1)
    x, y = _data()
    spec, cfg = NetworkSpec("mlp", hidden=16), TrainConfig(epochs=4, batch_size=16, lr=0.1, device="cpu")
    record = (lambda d: protocol.record_crossfit(spec, cfg, x, y, num_classes=3, seed=0, directory=d, folds=3,
                                                 progress=False)) if kind == "crossfit" else \
        (lambda d: protocol.record_in_sample(spec, cfg, x, y, num_classes=3, seed=0, directory=d, progress=False))  # fmt: skip
    clock = _Clock()
    monkeypatch.setattr(protocol, "time", clock)
    monkeypatch.setattr(loop, "time", clock)
    where = protocol if kind == "crossfit" else loop
    real = where.run_epoch

    def ticking(*a, **kw):
        clock.t += 1.0
        return real(*a, **kw)

    def dies(*a, epoch, **kw):  # killed in the last epoch (of the second run, in sample)
        if epoch == 3 and (kind == "crossfit" or kw["config"].seed == protocol.run_seed(0, 1)):
            raise _Killed
        return ticking(*a, epoch=epoch, **kw)

    monkeypatch.setattr(where, "run_epoch", ticking)
    full = record(tmp_path / "full")
    assert full.seconds == ((12.0,) if kind == "crossfit" else (4.0, 4.0))  # 4 epochs x 3 folds; 4 epochs x 2 runs
    monkeypatch.setattr(where, "run_epoch", dies)
    with pytest.raises(_Killed):
        record(tmp_path / "k")
    monkeypatch.setattr(where, "run_epoch", ticking)
    resumed = record(tmp_path / "k")
    assert resumed.seconds == full.seconds
    np.testing.assert_array_equal(resumed.accuracy, full.accuracy)
    assert all(s > 0 for s in full.seconds) and all(np.isfinite(full.accuracy))


def test_recording_fingerprint_has_the_class_names_clip_reads():
    """CLIP builds its head from prompts of the class names: a recording of other names is not
    the same recording; the other networks do not read them (their fingerprints stay as they were)."""
    from labeltrace.train.recipe import NetworkSpec

    y = np.arange(12) % 2
    cfg = TrainConfig(epochs=1)

    def fp(kind: str, classes: list[str]) -> dict:
        spec = NetworkSpec(kind, clip_model="m") if kind == "clip" else NetworkSpec(kind)
        return protocol._fingerprint(protocol.InSample(1), spec, cfg, y, 0, {}, 5, False, classes)

    assert fp("clip", ["cat", "dog"]) != fp("clip", ["car", "truck"])
    assert fp("mlp", ["cat", "dog"]) == fp("mlp", ["car", "truck"]) and "classes" not in fp("mlp", ["a", "b"])


def test_a_finished_recording_from_before_the_aux_draw_key_is_still_loaded(tmp_path):
    """Recordings written before fingerprints had ``aux_draw`` saved their auxiliary sets: a scan
    of that run directory re-scores them instead of refusing the directory."""
    import json

    from labeltrace.train.recipe import NetworkSpec

    torch.set_num_threads(1)
    x, y = _data()
    spec, cfg = NetworkSpec("linear"), TrainConfig(epochs=1, batch_size=16, lr=0.1, device="cpu")
    first = protocol.record_in_sample(spec, cfg, x, y, num_classes=3, seed=0, directory=tmp_path, progress=False)
    meta_path = tmp_path / "recording.json"
    meta = json.loads(meta_path.read_text())
    del meta["fingerprint"]["aux_draw"]  # as the code before it wrote it
    meta_path.write_text(json.dumps(meta))
    again = protocol.record_in_sample(spec, cfg, x, y, num_classes=3, seed=0, directory=tmp_path, progress=False)
    np.testing.assert_array_equal(again.runs[1].is_auxiliary, first.runs[1].is_auxiliary)
    meta["fingerprint"]["seed"] = 5  # any other difference is still refused
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="another configuration"):
        protocol.record_in_sample(spec, cfg, x, y, num_classes=3, seed=0, directory=tmp_path, progress=False)
