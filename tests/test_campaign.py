"""The campaign glue: vote tables, the head in the loop, the active loop and the simulation."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labeltrace.relabel import experiment, head
from labeltrace.relabel import io as rio
from labeltrace.relabel import votes as vm
from labeltrace.relabel.result import CampaignResult

torch.set_num_threads(1)

N, K, D = 150, 3, 6
FAST = head.HeadConfig(model="linear", epochs=3, batch_size=64, lr=0.1)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Votes (N, K) of 20 annotators, features that separate the true classes, the truth."""
    rng = np.random.default_rng(seed)
    truth = np.arange(N) % K
    conc = np.full((N, K), 0.4)
    conc[np.arange(N), truth] = np.where(rng.random(N) < 0.3, 1.5, 12.0)  # some ambiguous
    votes = np.stack([rng.multinomial(20, rng.dirichlet(c)) for c in conc])
    votes[np.arange(N), truth] += 1  # the intended class stays the majority more often
    centers = rng.normal(0, 3, (K, D))
    feats = centers[vm.true_labels(votes)] + rng.normal(0, 1, (N, D))
    return votes, feats * 5 + 7, vm.true_labels(votes)  # unstandardised on purpose


# --------------------------------------------------------------------------- load_votes


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_votes_cifar10h_layout(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "labels.csv",
        "index,file,original_label,votes_cat,votes_dog,votes_ship\n"
        "0,test/0.jpg,0,48,2,1\n"
        "1,test/1.jpg,2,0,0,51\n"
        "2,test/2.jpg,1,20,30,0\n",
    )
    votes, classes = rio.load_votes(f)
    assert classes == ["cat", "dog", "ship"]
    np.testing.assert_array_equal(votes, [[48, 2, 1], [0, 0, 51], [20, 30, 0]])
    assert votes.dtype == np.float64


def test_a_total_column_or_shuffled_ids_are_refused(tmp_path: Path) -> None:
    """A votes_total column was read as a class every image belonged to (oracle accuracy 82 %, the
    noise 21.9 % for 15 %, unsaid), and rows shuffled under an 'id' column ran against the features
    in another order."""
    total = _write(tmp_path / "t.csv", "index,votes_cat,votes_dog,votes_total\n0,48,2,50\n1,0,51,51\n2,20,30,50\n")
    with pytest.raises(ValueError, match=r"t.csv: the vote column total hold each row's sum of the other vote "
                                         r"columns: a total"):  # fmt: skip
        rio.load_votes(total)
    shuffled = _write(tmp_path / "s.csv", "id,votes_cat,votes_dog\n2,48,2\n0,0,51\n1,20,30\n")
    with pytest.raises(ValueError, match=r"s.csv: its id column holds the ids 0..2 out of row order \(rows \[0, 1, 2\]\)"):
        rio.load_votes(shuffled)
    other_ids = _write(tmp_path / "o.csv", "id,votes_cat,votes_dog\n12,48,2\n7,0,51\n31,20,30\n")
    assert rio.load_votes(other_ids)[1] == ["cat", "dog"]  # ids of their own: not sample ids


def test_load_votes_npy_and_errors(tmp_path: Path) -> None:
    arr = np.array([[3, 1], [0, 4]])
    np.save(tmp_path / "v.npy", arr)
    votes, classes = rio.load_votes(tmp_path / "v.npy")
    np.testing.assert_array_equal(votes, arr)
    assert classes == ["0", "1"]
    np.save(tmp_path / "z.npy", np.array([[3, 1], [0, 0], [1, 1]]))
    with pytest.raises(ValueError, match=r"without any vote.*\[1\]"):
        rio.load_votes(tmp_path / "z.npy")
    bad = _write(tmp_path / "b.csv", "file,votes_a,votes_b\nx,1,2\ny,three,0\n")
    with pytest.raises(ValueError, match="row 1 column votes_a"):
        rio.load_votes(bad)
    neg = _write(tmp_path / "n.csv", "votes_a,votes_b\n1,2\n3,-1\n")
    with pytest.raises(ValueError, match=r"negative.*\[1\]"):
        rio.load_votes(neg)
    idx = _write(tmp_path / "i.csv", "index,votes_a,votes_b\n0,1,2\n2,3,1\n1,0,1\n")
    with pytest.raises(ValueError, match=r"index column.*rows \[1, 2\]"):
        rio.load_votes(idx)
    nov = _write(tmp_path / "c.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError, match="no vote columns"):
        rio.load_votes(nov)
    with pytest.raises(ValueError, match="does not exist"):
        rio.load_votes(tmp_path / "missing.csv")


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 20), st.integers(1, 5)),
              elements=st.floats(-1e3, 1e3, allow_nan=False)))  # fmt: skip
def test_standardize_moments(x: np.ndarray) -> None:
    z32 = head.standardize(x)
    assert z32.dtype == np.float32 and z32.shape == x.shape
    z = z32.astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    sd = x.std(axis=0)
    varying = sd > 1e-6 * np.maximum(1.0, np.abs(x).max(axis=0))
    np.testing.assert_allclose(z.std(axis=0)[varying], 1.0, rtol=1e-3)


def test_standardize_rejects_nan() -> None:
    x = np.ones((5, 2))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"\[3\]"):
        head.standardize(x)


# --------------------------------------------------------------------------- the head


def test_train_head_posterior_and_sei() -> None:
    _, feats, truth = _data()
    x = head.standardize(feats)
    rng = np.random.default_rng(1)
    labels = truth.copy()
    flipped = rng.choice(N, 20, replace=False)
    labels[flipped] = (labels[flipped] + 1) % K
    cfg = head.HeadConfig(model="mlp", hidden=16, epochs=6, batch_size=32, lr=0.1)
    out = head.train_head(x, labels, num_classes=K, config=cfg)
    assert out.posterior.shape == (N, K) and out.sei.shape == (N,)
    np.testing.assert_allclose(out.posterior.sum(axis=1), 1.0, atol=1e-12)
    assert (out.posterior >= 0).all()
    assert np.all(np.abs(out.sei) <= math.log(K) + 1e-6)
    # the head learns the classes from the features: its posterior prefers the true class of
    # most flipped samples, and SEI ranks flipped labels lower than the kept ones
    assert np.mean(out.posterior.argmax(1) == truth) > 0.8
    assert np.mean(out.posterior[flipped].argmax(1) != labels[flipped]) > 0.6
    keep = np.setdiff1d(np.arange(N), flipped)
    assert out.sei[flipped].mean() < out.sei[keep].mean()
    last = head.train_head(x, labels, num_classes=K, config=replace(cfg, posterior="last"))
    assert last.posterior.shape == (N, K)
    np.testing.assert_allclose(last.sei, out.sei)  # same run, only the posterior window differs


def test_train_head_deterministic_by_seed() -> None:
    _, feats, truth = _data()
    x = head.standardize(feats)
    a = head.train_head(x, truth, num_classes=K, config=FAST)
    torch.manual_seed(123)  # global RNG state must not matter
    b = head.train_head(x, truth, num_classes=K, config=FAST)
    c = head.train_head(x, truth, num_classes=K, config=replace(FAST, seed=1))
    np.testing.assert_array_equal(a.posterior, b.posterior)
    np.testing.assert_array_equal(a.sei, b.sei)
    assert not np.array_equal(a.posterior, c.posterior)


@pytest.mark.parametrize("folds", [1, 3])
def test_train_head_ensemble_averages_seeded_heads(folds: int) -> None:
    _, feats, truth = _data()
    x = head.standardize(feats)
    labels = truth.copy()
    labels[:10] = (labels[:10] + 1) % K
    cfg = replace(FAST, folds=folds)
    ens = head.train_head(x, labels, num_classes=K, config=replace(cfg, seed=3, ensemble=2))
    one = [head.train_head(x, labels, num_classes=K, config=replace(cfg, seed=s)) for s in (3, 3 + 7919)]
    assert not np.allclose(one[0].posterior, one[1].posterior)  # two different heads
    want = (one[0].posterior + one[1].posterior) / 2
    np.testing.assert_allclose(ens.posterior, want / want.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(ens.sei, (one[0].sei + one[1].sei) / 2, atol=1e-12)
    with pytest.raises(ValueError, match="ensemble"):
        head.HeadConfig(ensemble=0)


@pytest.mark.parametrize("posterior", ["mean", "last"])
def test_train_head_prune_retrains_without_the_contradicted(posterior: str) -> None:
    _, feats, truth = _data()
    x = head.standardize(feats)
    labels = truth.copy()
    flipped = np.random.default_rng(2).choice(N, 30, replace=False)
    labels[flipped] = (labels[flipped] + 1) % K
    cfg = head.HeadConfig(model="mlp", hidden=16, epochs=8, batch_size=32, lr=0.1, seed=4,
                          posterior=posterior)  # type: ignore[arg-type]
    plain = head.train_head(x, labels, num_classes=K, config=cfg)
    pruned = head.train_head(x, labels, num_classes=K, config=replace(cfg, prune=True))
    out = plain.posterior.argmax(1) != labels
    assert 0 < out.sum() < N
    # SEI and the fit are the first run's
    np.testing.assert_array_equal(pruned.sei, plain.sei)
    assert pruned.train_accuracy == plain.train_accuracy
    # the kept samples: exactly a plain head trained on them alone, seeded seed + 55
    kept = np.flatnonzero(~out)
    alone = head.train_head(x[kept], labels[kept], num_classes=K, config=replace(cfg, seed=cfg.seed + 55))
    np.testing.assert_allclose(pruned.posterior[kept], alone.posterior, atol=1e-6)
    # the left-out samples: a head that never saw their labels believes them less
    left = np.flatnonzero(out)
    given_p = pruned.posterior[left, labels[left]]
    assert given_p.mean() < plain.posterior[left, labels[left]].mean()
    np.testing.assert_allclose(pruned.posterior.sum(1), 1.0, atol=1e-12)


def test_train_head_prune_edge_cases() -> None:
    _, feats, truth = _data()
    x = head.standardize(feats)
    cfg = head.HeadConfig(model="mlp", hidden=16, epochs=8, batch_size=32, lr=0.1)
    plain = head.train_head(x, truth, num_classes=K, config=cfg)
    assert not (plain.posterior.argmax(1) != truth).any()  # true labels: all fitted
    pruned = head.train_head(x, truth, num_classes=K, config=replace(cfg, prune=True))
    np.testing.assert_array_equal(pruned.posterior, plain.posterior)  # nothing to leave out
    with pytest.raises(ValueError, match="folds = 1"):
        head.HeadConfig(prune=True, folds=5)


def test_train_head_views_average_the_heads_of_each_view() -> None:
    _, feats, truth = _data()
    labels = truth.copy()
    labels[:20] = (labels[:20] + 1) % K
    a = head.standardize(feats)
    b = head.standardize(np.tanh(feats[:, ::-1] * 0.5))  # a second, narrower view of the same rows
    b = b[:, :-3]
    cfg = replace(FAST, seed=5, ensemble=2)
    both = head.train_head([a, b], labels, num_classes=K, config=cfg)
    one = [head.train_head(v, labels, num_classes=K, config=cfg) for v in (a, b)]
    mean = (one[0].posterior + one[1].posterior) / 2
    np.testing.assert_allclose(both.posterior, mean / mean.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(both.sei, (one[0].sei + one[1].sei) / 2, atol=1e-12)
    assert both.train_accuracy == pytest.approx((one[0].train_accuracy + one[1].train_accuracy) / 2)
    # a single view in a list is the plain head
    np.testing.assert_array_equal(head.train_head([a], labels, num_classes=K, config=cfg).posterior,
                                  one[0].posterior)
    with pytest.raises(ValueError, match=r"row counts differ \[150, 149\]"):
        head.train_head([a, b[:-1]], labels, num_classes=K, config=cfg)
    with pytest.raises(ValueError, match="no views"):
        head.HeadRetrainer([], num_classes=K)


def test_retrainer_caches_by_labels() -> None:
    _, feats, truth = _data()
    r = head.HeadRetrainer(head.standardize(feats), num_classes=K, config=FAST)
    p1, _ = r(truth)
    p2, _ = r(truth.copy())
    other = truth.copy()
    other[0] = (other[0] + 1) % K
    r(other)
    assert (r.calls, r.trainings) == (3, 2)
    np.testing.assert_array_equal(p1, p2)
    p1[:] = 0  # callers get copies
    np.testing.assert_array_equal(r(truth)[0], p2)


# --------------------------------------------------------------------------- the active loop


def _expected_update_points(res: CampaignResult, every: int) -> list[int]:
    """Indices into ``res.picked`` after whose settlement the active loop must retrain: the first
    image boundary at or past each multiple of ``every`` crossed, before the budget is spent."""
    t = np.cumsum(res.draws)
    n_settled = len(t) - (res.in_progress >= 0)
    points, seen = [], set()
    for i in range(n_settled):
        if every <= t[i] < res.budget and t[i] // every not in seen:
            seen.add(int(t[i] // every))
            points.append(i)
    return points


@pytest.mark.parametrize("every", [7, 25])
def test_active_loop_retrains_every_m_relabels(every: int) -> None:
    votes, feats, _ = _data()
    init = vm.sample_initial_labels(votes, temperature=3.0, seed=0)
    r = head.HeadRetrainer(head.standardize(feats), num_classes=K, config=FAST)
    first = r.fit(init.labels)
    res = experiment.run_campaign(votes, init, budget=120, selector="joint", posterior=first.posterior,
                         update_posterior=r, update_every=every, seed=0)  # fmt: skip
    points = _expected_update_points(res, every)
    assert res.n_updates == r.calls == len(points)
    assert r.calls >= 120 // every - 2
    # each retraining saw the labels of its moment: the initial labels, except the images
    # settled so far, which carry their majority vote
    for lab, i in zip(r.history, points, strict=True):
        want = init.labels.copy()
        done = res.picked[: i + 1]
        want[done] = res.final_labels[done]
        np.testing.assert_array_equal(lab, want)


def test_run_simulation_counts_and_determinism() -> None:
    votes, feats, truth = _data()
    kw: dict[str, Any] = {"features": feats, "selectors": ["random", "joint", "sei", "oracle"],
                          "seeds": [0, 1], "noise_rate": 0.2, "budget_factor": 2.0, "head": FAST}  # fmt: skip
    a = experiment.run_simulation(votes, active_every=20, **kw)
    assert a.budget == round(2.0 * round(0.2 * N))
    assert list(a.results) == ["random", "joint", "sei", "oracle"]
    for s, rs in zip(a.seeds, zip(*a.results.values(), strict=True), strict=True):
        for r in rs:
            assert (
                r.seed == s and r.relabels_used <= a.budget and r.accuracy.shape == (a.budget + 1,)
            )
        # every selector of a seed starts from the same noisy labels, at the target rate
        assert len({r.initial_labels.tobytes() for r in rs}) == 1
        assert np.mean(rs[0].initial_labels != truth) == pytest.approx(0.2, abs=1 / N)
    # random and oracle never retrain; the model selectors do, sharing the initial training
    for name in ("random", "oracle"):
        assert all(r.n_updates == 0 for r in a.results[name])
    for i in range(2):
        ups = sum(a.results[n][i].n_updates for n in ("joint", "sei"))
        assert ups > 0 and a.retrainings[i] <= 1 + ups
    assert all(r.normalized_gain == pytest.approx(1.0) for r in a.results["oracle"])
    b = experiment.run_simulation(votes, active_every=20, **kw)
    for name in a.results:
        for ra, rb in zip(a.results[name], b.results[name], strict=True):
            np.testing.assert_array_equal(ra.accuracy, rb.accuracy)
            np.testing.assert_array_equal(ra.picked, rb.picked)
    j0, j1 = a.results["joint"]
    assert not np.array_equal(j0.initial_labels, j1.initial_labels)


def test_run_simulation_needs_features_for_model_selectors() -> None:
    votes, _, _ = _data()
    with pytest.raises(ValueError, match="features"):
        experiment.run_simulation(votes, selectors=["random", "sei"], seeds=[0])
    sim = experiment.run_simulation(
        votes, selectors=["random", "oracle"], seeds=[0, 1], noise_rate=0.2
    )
    assert sim.head is None and all(math.isnan(a) for a in sim.head_accuracy)
    # oracle fixes at least as many labels as random at every point (it picks wrong labels first)
    for o, r in zip(sim.results["oracle"], sim.results["random"], strict=True):
        assert o.fixed[len(o.fixed) // 4] >= r.fixed[len(r.fixed) // 4]
    # ratio_to_random by hand
    f = 0.25
    rr = max(1, round(f * sim.budget))
    pairs = zip(sim.results["oracle"], sim.results["random"], strict=True)
    want = np.mean([o.fixed[rr] / r.fixed[rr] for o, r in pairs])
    assert experiment.ratio_to_random(sim, "oracle", f)[0] == pytest.approx(want)
    text = rio.format_summary(sim)
    assert "oracle" in text and "random" in text and f"budget {sim.budget}" in text


def test_run_simulation_with_a_model_in_the_loop() -> None:
    """``model(labels, seed)`` replaces the head: it sees each seed's initial labels (and, live, the
    labels of each refresh); a model that knows the vote majority makes cross_entropy pick only
    noisy labels first."""
    votes, _, truth = _data()
    seen: list[tuple[int, np.ndarray]] = []

    def majority(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        seen.append((seed, labels.copy()))
        post = np.full((N, K), 0.01)
        post[np.arange(N), truth] = 1 - 0.01 * (K - 1)
        return post, np.where(labels == truth, 1.0, -1.0)

    kw: dict[str, Any] = {"selectors": ["random", "cross_entropy", "oracle"], "seeds": [3, 4],
                          "noise_rate": 0.2, "budget_factor": 2.0}  # fmt: skip
    sim = experiment.run_simulation(votes, model=majority, **kw)
    assert [s for s, _ in seen] == [3, 4] and sim.head_accuracy == [1.0, 1.0]
    for (s, lab), r in zip(seen, sim.results["cross_entropy"], strict=True):
        tau = vm.temperature_for_rate(votes, 0.2, seed=s)
        np.testing.assert_array_equal(lab, vm.sample_initial_labels(votes, temperature=tau, seed=s).labels)
        noisy = np.flatnonzero(lab != truth)
        assert set(r.picked[: noisy.size].tolist()) == set(noisy.tolist())
    assert all(rec == 1.0 for rec in sim.head_noisy_recall) and sim.retrainings == [1, 1]
    seen.clear()
    live = experiment.run_simulation(votes, model=majority, active_every=10, **kw)
    assert len(seen) == 2 + sum(live.updates) and sum(live.updates) > 0
    assert live.retrainings == [1 + u for u in live.updates]


def test_run_simulation_checks_every_setting_before_the_first_seed_trains() -> None:
    """`seeds=[0, -1]` trained seed 0, then failed with numpy's error; `seeds=[1.7]` ran seed 1,
    `seeds=True` seed 0; head=, active_every, active_method, gamma and model= were accepted (and
    recorded) with model-free selectors; active_method="bogus" without active_every, and features of
    another length, passed where no selector read them. Each is refused before anything trains."""
    votes, feats, _ = _data()
    calls: list[int] = []

    def model(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(seed)
        return np.full((N, K), 1 / K), np.zeros(N)

    free: dict[str, Any] = {"selectors": ["random", "oracle"], "seeds": [0], "noise_rate": 0.2}
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"selectors": ["cross_entropy"], "seeds": [0, -1], "model": model},
         "seeds must be distinct whole numbers >= 0 (a non-empty list), got [0, -1]"),
        ({**free, "seeds": [1.7]}, "seeds must be distinct whole numbers >= 0"),
        ({**free, "seeds": True}, "seeds must be distinct whole numbers >= 0 (a non-empty list), got True"),
        ({**free, "seeds": [2, 2]}, "seeds must be distinct"),
        ({**free, "head": FAST}, "head set or feed the model behind the selectors that read one; none of the "
                                 "selectors random, oracle reads a model (leave it out)"),
        ({**free, "active_every": 10, "active_method": "propagation"}, "active_every, active_method set or feed"),
        ({**free, "model": model}, "model set or feed the model"),
        ({**free, "features": feats}, "features set or feed the model"),
        ({**free, "features": feats[:5]}, f"features have 5 rows but the votes have {N} images"),
        ({**free, "active_method": "bogus"}, "active_method='bogus' says how active_every M refreshes the ranking"),
        ({**free, "gamma": 0.5}, "gamma is the ambiguity threshold of joint and sei_joint; none of the selectors "
                                 "random, oracle reads it"),
        ({**free, "selectors": ["joint"], "model": model, "gamma": 5}, "gamma must be a number in [0, 1]"),
        ({"selectors": ["cross_entropy"], "seeds": [0], "model": model, "head": FAST}, "model replaces features"),
    ]
    for kw, said in refusals:
        with pytest.raises(ValueError) as e:
            experiment.run_simulation(votes, **kw)
        assert said in str(e.value), kw
    assert calls == []  # nothing trained


def test_run_simulation_model_errors() -> None:
    votes, feats, _ = _data()
    ok = (np.full((N, K), 1 / K), np.zeros(N))
    with pytest.raises(ValueError, match="model replaces features"):
        experiment.run_simulation(votes, features=feats, model=lambda lab, s: ok, seeds=[0])
    with pytest.raises(ValueError, match="model replaces features"):
        experiment.run_simulation(votes, model=lambda lab, s: ok, seeds=[0], active_every=5,
                                  active_method="propagation")  # fmt: skip
    with pytest.raises(ValueError, match=f"posterior has {N - 1} rows, expected {N}"):
        experiment.run_simulation(votes, model=lambda lab, s: (ok[0][1:], ok[1]), seeds=[0])
    bad = ok[1].copy()
    bad[[7, 9]] = np.nan
    with pytest.raises(ValueError, match="SEI has NaN or infinite values at.*7.*9"):
        experiment.run_simulation(votes, model=lambda lab, s: (ok[0], bad), seeds=[0])


def test_write_simulation(tmp_path: Path) -> None:
    votes, _, _ = _data()
    sim = experiment.run_simulation(
        votes, selectors=["random", "oracle"], seeds=[0, 1], noise_rate=0.2
    )
    paths = rio.write_simulation(sim, tmp_path / "out", title="t")
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0


def test_load_votes_reads_a_spreadsheets_byte_order_mark_and_refuses_repeated_classes(tmp_path: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_text("votes_cat,votes_dog,votes_fox\n3,1,0\n0,2,2\n1,0,3\n", encoding="utf-8-sig")
    votes, classes = rio.load_votes(bom)
    assert classes == ["cat", "dog", "fox"] and votes[:, 0].tolist() == [3, 0, 1]
    idx = tmp_path / "idx.csv"
    idx.write_text("index,votes_cat,votes_dog\n5,3,1\n0,0,2\n", encoding="utf-8-sig")
    with pytest.raises(ValueError, match="index column"):
        rio.load_votes(idx)
    twice = _write(tmp_path / "twice.csv", "votes_cat,votes_cat,votes_dog\n1,2,0\n0,1,1\n")
    with pytest.raises(ValueError, match="repeat the classes cat"):
        rio.load_votes(twice)


def test_standardize_names_non_finite_rows_without_numpy_warnings() -> None:
    import warnings

    from labeltrace.relabel.head import standardize

    x = np.ones((6, 3), np.float32) * np.arange(6)[:, None]
    x[4, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the column statistics of inf are not computed first
        with pytest.raises(ValueError, match="NaN or infinite values at .*4"):
            standardize(x)


def test_settle_all_equals_recording_each_vote_in_turn() -> None:
    """The live queue took in a store's decisions one record() at a time (1.6 s at 10^5 samples);
    settle_all does it on the arrays, with the same log."""
    from labeltrace.relabel.campaign import Campaign

    g = np.random.default_rng(3)
    n, k = 200, 4
    post = g.dirichlet(np.ones(k), size=n)
    init = g.integers(0, k, n)
    ids = np.sort(g.choice(n, 60, replace=False))
    labs = g.integers(0, k, 60)
    kw = {"num_classes": k, "budget": None, "priority": "joint", "posterior": post, "count_initial_label": False,
          "update_every": 25}
    one, many = Campaign(init, **kw), Campaign(init, **kw)
    for i, lab in zip(ids.tolist(), labs.tolist(), strict=True):
        one.record(i, lab)
    many.settle_all(ids, labs)
    a, b = one.log(), many.log()
    for f in ("labels", "label_counts", "settled", "picked", "draws", "settled_at", "settled_ids", "settled_labels"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.relabels_used == b.relabels_used == 60 and one.update_due == many.update_due
    np.testing.assert_array_equal(one.ranking(), many.ranking())
    with pytest.raises(ValueError, match="distinct samples not settled yet"):
        many.settle_all(ids[:1], labs[:1])
    paper = Campaign(init, **{**kw, "count_initial_label": True})  # a vote may not settle: one by one
    paper.settle_all(ids[:3], init[ids[:3]])
    assert paper.settled[ids[:3]].all() and paper.relabels_used == 3


@pytest.mark.parametrize(("arr", "match"), [
    (np.zeros((4, 0)), r"shape \(4, 0\); expected \(4, D\): one row per image of the votes"),
    (np.array([["a", "b"]] * 4), "holds <U1 values; expected real numbers"),
    (np.ones((4, 2), dtype=np.complex64), "holds complex64 values"),
    (np.ones((3, 2)), r"shape \(3, 2\); expected \(4, D\)"),
])  # fmt: skip
def test_simulation_features_are_checked_as_the_review_app_checks_them(tmp_path: Path, arr, match) -> None:
    """The simulation's loader took (N, 0) and complex features (the imaginary part dropped), and
    a file of strings failed inside numpy, naming no file."""
    p = tmp_path / "f.npy"
    np.save(p, arr)
    with pytest.raises(ValueError, match=match):
        rio.load_features(p, n=4)


def test_settle_all_refuses_what_record_refuses() -> None:
    """settle_all read 2.7 as class 2 and True as sample 1, and named positions as sample ids."""
    from labeltrace.relabel.campaign import Campaign

    c = Campaign(np.array([0, 1, 2, 0]), num_classes=3, budget=None, priority="random", count_initial_label=False)
    for ids, labs, match in (([1], [2.7], "labels must be integers"), ([1.9], [2], "sample ids must be integers"),
                             ([True], [1], "sample ids must be integers"),
                             ([3], [7], r"votes \[7\] for sample ids \[3\] are not classes in 0..2"),
                             ([4], [0], r"sample ids \[4\] lie outside 0..3")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            c.settle_all(np.array(ids), np.array(labs))
    assert not c.settled.any() and c.relabels_used == 0


def test_a_budget_past_the_last_settled_sample_is_said_in_the_summary() -> None:
    """A budget of 20,000 for 1,500 images used about 1,775 relabels: random scored gain/oracle 0.97,
    near the oracle, with no word of the flat tail that made them alike."""
    votes, _, _ = _data()
    sim = experiment.run_simulation(votes, selectors=["random", "oracle"], seeds=[0], noise_rate=0.2, budget=50_000)
    used = max(r.relabels_used for runs in sim.results.values() for r in runs)
    assert used < 50_000
    assert f"note: every campaign settled every sample within {used:,} of the 50,000 relabels" in rio.format_summary(sim)
    fit = experiment.run_simulation(votes, selectors=["random", "oracle"], seeds=[0], noise_rate=0.2)
    assert "note:" not in rio.format_summary(fit)
    with pytest.raises(ValueError, match=r"--budget-factor 3 x round\(--noise-rate 0.0003 x .* is no relabel"):
        experiment.run_simulation(votes, selectors=["random"], seeds=[0], noise_rate=0.0003)


def test_the_summary_header_names_an_ensemble_and_a_pruned_head() -> None:
    """`simulate --ensemble 3` / `--prune` printed "static model" only: the header now says which head."""
    from labeltrace.relabel.head import HeadConfig
    from labeltrace.relabel.io import format_summary

    votes, feats, _ = _data()
    kw: dict[str, Any] = {"selectors": ["random", "cross_entropy"], "seeds": [0], "noise_rate": 0.2,
                          "budget_factor": 1.0, "features": feats}  # fmt: skip
    plain = format_summary(experiment.run_simulation(votes, head=HeadConfig(epochs=2), **kw))
    assert "static model" in plain and "heads averaged" not in plain and "refit" not in plain
    both = format_summary(experiment.run_simulation(votes, head=HeadConfig(epochs=2, ensemble=2, prune=True), **kw))
    assert "static model, 2 heads averaged, head refit without the labels its first run contradicts" in both
