"""Live re-ranking: label propagation, the live queue, the review app's live order, the
simulator's active loop through the same refresh, and the page's context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from runfactory import make_run, recorded_posterior

from labeltrace.record import Recorder
from labeltrace.relabel import experiment
from labeltrace.relabel.campaign import Campaign
from labeltrace.relabel.live import ACTIVE, LiveConfig, LiveQueue
from labeltrace.relabel.propagation import LabelPropagation, neighbour_graph
from labeltrace.relabel.queue import queue_posterior, write_queue
from labeltrace.review import create_app
from labeltrace.review.context import ReviewContext
from labeltrace.rundir import REVIEW_CONTEXT, open_run, recording_dir

LOCAL = "http://127.0.0.1"


# --------------------------------------------------------------------------- propagation
def test_propagation_by_hand() -> None:
    # 4 samples, 2 classes; sample 0's neighbours are 1 and 2 (k = 2)
    nb = np.array([[1, 2], [0, 2], [0, 1], [1, 2]])
    p0 = np.array([[0.7, 0.3], [0.6, 0.4], [0.5, 0.5], [0.2, 0.8]])
    y0 = np.array([0, 0, 0, 1])
    lp = LabelPropagation(nb, p0, y0, strength=1.0)
    np.testing.assert_allclose(lp(y0), p0)  # nothing changed: the model's posterior
    y = np.array([0, 1, 0, 1])  # sample 1 corrected to class 1
    got = lp(y)
    # sample 0: neighbours' class-1 share 0 -> 1/2: p = (0.7 - 0.5, 0.3 + 0.5) = (0.2, 0.8)
    np.testing.assert_allclose(got[0], [0.2, 0.8])
    # sample 3: neighbours 1, 2: class-1 share 0 -> 1/2: (0.2 - 0.5 -> 0, 1.3) -> (0, 1)
    np.testing.assert_allclose(got[3], [0.0, 1.0])
    np.testing.assert_allclose(got[1], p0[1])  # its own neighbours (0, 2) did not change
    assert lp.calls == 2
    with pytest.raises(ValueError, match="neighbour ids"):
        LabelPropagation(np.array([[5, 1], [0, 2], [0, 1], [1, 2]]), p0, y0)


def test_propagation_raises_the_priority_of_a_corrected_samples_look_alikes() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 0.1, (20, 3)) + [5, 0, 0], rng.normal(0, 0.1, (20, 3)) + [0, 5, 0]]
    nb = neighbour_graph(x, k=5)
    assert nb.shape == (40, 5) and (nb[:20] < 20).all() and (nb[20:] >= 20).all()
    y0 = np.zeros(40, dtype=np.int64)
    y0[20:] = 1
    p0 = np.full((40, 2), 0.5)
    lp = LabelPropagation(nb, p0, y0)
    y = y0.copy()
    y[0] = 1  # an expert says sample 0 (in cluster 0) is class 1
    p = lp(y)
    affected = np.flatnonzero((nb == 0).any(axis=1))
    assert affected.size and (p[affected, 0] < 0.5).all()  # label 0 looks less likely there
    others = np.setdiff1d(np.arange(40), np.r_[affected, 0])
    np.testing.assert_allclose(p[others], 0.5)


# --------------------------------------------------------------------------- the live queue
def _queue(n: int = 8, every: int = 2) -> tuple[LiveQueue, Campaign]:
    given = np.zeros(n, dtype=np.int64)
    p0 = np.tile([0.9, 0.1], (n, 1))
    p0[:, 1] = np.linspace(0.1, 0.8, n)  # sample n-1 most suspect
    p0[:, 0] = 1 - p0[:, 1]
    c = Campaign(given, num_classes=2, budget=None, priority="cross_entropy", posterior=p0,
                 count_initial_label=False, update_every=every)  # fmt: skip
    flip = np.eye(n)[::-1]  # the refresh reverses the suspicion: sample 0 most suspect

    def update(labels: np.ndarray) -> np.ndarray:
        q = np.tile([0.9, 0.1], (n, 1))
        q[:, 1] = flip @ p0[:, 1]
        q[:, 0] = 1 - q[:, 1]
        return q

    order = np.argsort(-p0[:, 1], kind="stable")
    return LiveQueue(order, c, update, background=False), c


def test_live_queue_reranks_only_what_nobody_reached() -> None:
    lq, c = _queue()
    start = lq.order.tolist()
    assert start == [7, 6, 5, 4, 3, 2, 1, 0]
    labels = np.zeros(8, dtype=np.int64)
    resolved = np.zeros(8, dtype=bool)
    resolved[7] = True
    labels[7] = 1
    assert not lq.sync(labels, resolved, reached=1)  # 1 settled of every 2: not yet
    assert lq.version == 0 and lq.status()["until_next"] == 1
    resolved[6] = True
    assert lq.sync(labels, resolved, reached=3)  # two settled: a refresh, positions 0-2 stay
    assert lq.version == 1
    assert lq.order.tolist() == [7, 6, 5, 0, 1, 2, 3, 4]
    assert c.labels.tolist() == [0] * 7 + [1]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _walk(n: int = 20) -> tuple[LiveQueue, _Clock, list[int]]:
    """A live queue of n samples whose first refresh ranks sample 0 most suspect, then 1, 2, ...
    (the initial order is the reverse: n-1 first)."""
    lq, _ = _queue(n=n, every=1)
    clock = _Clock()
    lq._clock = clock
    return lq, clock, lq.order.tolist()


def _decide(lq: LiveQueue, sample: int) -> None:
    n = lq.members.size
    resolved = np.zeros(n, dtype=bool)
    resolved[sample] = True
    assert lq.sync(np.zeros(n, dtype=np.int64), resolved) and lq.version == 1


def test_one_look_far_down_the_queue_moves_nothing_before_it() -> None:
    """One reviewer opening position 15 (a link, a find) froze every position before it: the
    re-ranking reached no one walking the queue from the start."""
    lq, _, before = _walk()
    assert lq.show(0, "ada") == before[0] and lq.show(1, "ada") == before[1]
    far = lq.show(15, "bo")
    _decide(lq, before[0])
    after = lq.order.tolist()
    assert after[:2] == before[:2] and after[15] == far == before[15]  # shown: kept where they are
    assert after[2:5] == [0, 2, 5] and after[16:18] == [1, 3]  # dealt in turn after ada and after bo
    assert sorted(after) == sorted(before)


def test_a_lone_reviewer_who_jumped_is_served_the_live_picks_ahead_of_them() -> None:
    lq, _, before = _walk()
    lq.show(0, "ada")
    for pos in (10, 11):  # a jump, then walking on
        lq.show(pos, "ada")
    _decide(lq, before[0])
    after = lq.order.tolist()
    assert after[10:12] == before[10:12]
    assert after[12:15] == [0, 1, 2]  # ahead of ada, not on the positions she passed over
    assert not {0, 1, 2} & set(after[1:10]) and sorted(after) == sorted(before)


def test_a_reviewer_gone_for_ten_minutes_no_longer_steers_the_re_ranking() -> None:
    lq, clock, before = _walk()
    lq.show(2, "bo")  # bo stopped at position 2
    clock.now = ACTIVE / 2
    lq.show(10, "ada")
    assert lq.places().tolist() == [2, 10]  # both active
    clock.now = ACTIVE + 1
    assert lq.places().tolist() == [10]
    _decide(lq, before[10])
    assert lq.order.tolist()[11:13] == [0, 1]  # all after ada: none after bo's old place


def test_a_nameless_reviewer_who_jumped_is_served_ahead_too_and_gone_reviewers_lapse() -> None:
    """Nameless pages that send no page id share one place, the latest (every recent one had
    counted: a lone nameless reviewer who jumped found the picks behind them for ten minutes)."""
    lq, clock, before = _walk()
    for pos in (0, 1, 10, 11):
        lq.show(pos)
    assert lq.places().tolist() == [11] and lq.start() == 11
    lq.show(3, "ada")
    assert lq.places().tolist() == [3, 11]
    clock.now = ACTIVE + 1  # both lapse
    assert lq.places().tolist() == [] and lq.start() == 0
    lq.show(12, "ada")
    assert lq.places().tolist() == [12] and set(lq._places) == {("ada", None)}  # the gone ones dropped
    lq.show(2, None, "tab-1")
    lq.show(8, None, "tab-2")  # pages that send their id: a place each, nameless or not
    assert lq.places().tolist() == [2, 8, 12]
    for k in range(5):  # a viewer's newest four pages count (a script sending an id per request)
        lq.show(13 + k, "bot", f"page-{k}")
    assert lq.places().tolist() == [2, 8, 12, 14, 15, 16, 17]


def test_the_live_picks_are_dealt_in_turn_to_each_reviewers_next_positions() -> None:
    """Every pick had gone after the earliest active reviewer: a colleague working further down
    the queue was served samples ranked below the whole gap between them."""
    lq, _, before = _walk()
    lq.show(0, "ada")
    lq.show(10, "bo")
    _decide(lq, before[0])
    after = lq.order.tolist()
    assert after[0] == before[0] and after[10] == before[10]
    assert [after[1], after[11], after[2], after[12]] == [0, 1, 2, 3]  # ada's next, bo's next, ...
    assert sorted(after) == sorted(before)


def test_decisions_settled_during_a_refresh_count_towards_the_next() -> None:
    """At 50,000 samples the first refresh took 20 s and 100 samples settled meanwhile: they waited
    for a full --live-every more before they reached the posterior."""
    lq, c = _queue(n=8, every=2)
    arrived = np.array([5, 4])

    def slow(labels: np.ndarray) -> np.ndarray:  # two more samples settle while it computes
        c.settle_all(arrived, np.zeros(2, dtype=np.int64))
        return np.tile([0.6, 0.4], (8, 1))

    lq.updater = slow
    labels = np.zeros(8, dtype=np.int64)
    resolved = np.zeros(8, dtype=bool)
    resolved[[7, 6]] = True
    assert lq.sync(labels, resolved, reached=0) and lq.version == 1  # the refresh, from 2 settled
    assert c.relabels_used == 4 and c.update_due  # the 2 that arrived meanwhile: the next is due at once
    lq.updater = lambda labels: np.tile([0.7, 0.3], (8, 1))
    resolved[arrived] = True
    assert lq.sync(labels, resolved, reached=0) and lq.version == 2


def test_a_refresh_due_when_a_long_one_ends_starts_then_not_at_the_next_decision() -> None:
    """Decisions settled during a long background refresh made the next one due, but it started
    only when one more decision arrived (after a long refresh, the slowest reviewers' last ones)."""
    import threading

    lq, _ = _queue(n=8, every=2)
    lq.background = True
    release, calls = threading.Event(), []

    def slow(labels: np.ndarray) -> np.ndarray:
        calls.append(labels.copy())
        if len(calls) == 1:
            assert release.wait(10)
        return np.tile([0.6, 0.4], (8, 1))

    lq.updater = slow
    labels = np.zeros(8, dtype=np.int64)
    resolved = np.zeros(8, dtype=bool)
    resolved[[7, 6]] = True
    assert lq.sync(labels, resolved) and lq.refreshing
    resolved[[5, 4]] = True
    labels[5] = 1
    assert not lq.sync(labels, resolved)  # one runs: these two wait for it
    release.set()
    assert lq.wait(10) and lq.version == 2 and not lq.refreshing  # the second, with no decision since
    assert len(calls) == 2 and calls[1][5] == 1 and lq.campaign.relabels_used == 4
    assert not lq.campaign.update_due


def test_live_queue_keeps_its_order_when_a_refresh_fails() -> None:
    lq, _ = _queue()
    msgs: list[str] = []

    def broken(labels: np.ndarray) -> np.ndarray:
        raise RuntimeError("no features")

    lq.updater, lq.log = broken, msgs.append
    before = lq.order.copy()
    resolved = np.zeros(8, dtype=bool)
    resolved[[7, 6]] = True
    lq.sync(np.zeros(8, dtype=np.int64), resolved, reached=2)
    np.testing.assert_array_equal(lq.order, before)
    assert lq.error == "RuntimeError: no features" and "no features" in msgs[0]


# --------------------------------------------------------------------------- the app
@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path, n=60, k=3, seed=11, embedding=True)


def _ids(c: TestClient, n: int) -> list[int]:
    return [c.get(f"/api/item/{p}?peek=true").json()["id"] for p in range(n)]


@pytest.mark.parametrize("method", ["propagation", "head"])
def test_app_live_order_changes_after_decisions(run_dir: Path, method: str) -> None:
    app = create_app(run_dir, live=LiveConfig(method=method, every=2))  # type: ignore[arg-type]
    c = TestClient(app, base_url=LOCAL)
    n = open_run(run_dir).num_samples
    before = _ids(c, n)
    given = open_run(run_dir).column("given_label")
    classes = open_run(run_dir).classes
    for p in range(2):  # the first two samples get another label than they had
        i = before[p]
        r = c.post("/api/decision", json={"sample_id": i, "reviewer": "ada",
                                          "decision": next(x for x in classes if x != given[i])})
        assert r.status_code == 200 and r.json()["next"] == p + 1
    live = app.state.review.live
    assert live.wait(30) and live.version == 1
    after = _ids(c, n)
    assert after[:2] == before[:2]  # reached positions keep their samples
    assert sorted(after) == sorted(before) and after[2:] != before[2:]
    s = c.get("/api/state").json()
    assert s["live"]["version"] == 1 and s["live"]["error"] is None


def test_the_propagation_graph_is_computed_once_per_run(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every review server with `--live propagation` computed the exact neighbour graph again on its
    first refresh (minutes at 100k samples, ~N^1.8): it is cached with the page's context."""
    import labeltrace.relabel.propagation as prop

    calls = []
    real = prop.neighbour_graph
    spy = lambda x, *, k: calls.append(k) or real(x, k=k)  # noqa: E731
    monkeypatch.setattr(prop, "neighbour_graph", spy)
    monkeypatch.setattr("labeltrace.relabel.live.neighbour_graph", spy)
    for _ in range(2):  # two servers, one after the other
        app = create_app(run_dir, live=LiveConfig(method="propagation", every=1, k=4))
        c = TestClient(app, base_url=LOCAL)
        i = c.get("/api/item/0").json()["id"]
        label = open_run(run_dir).classes[0]
        assert c.post("/api/decision", json={"sample_id": i, "reviewer": "ada", "decision": label}).status_code == 200
        live = app.state.review.live
        assert live.wait(30) and live.error is None and live.version >= 1
    assert calls == [4]
    emb = ReviewContext(open_run(run_dir)).load()["embedding"]
    np.testing.assert_array_equal(ReviewContext(open_run(run_dir)).graph(4), real(emb, k=4))


def test_context_neighbours_top_and_trajectory(run_dir: Path) -> None:
    c = TestClient(create_app(run_dir), base_url=LOCAL)
    run = open_run(run_dir)
    item = c.get("/api/item/0").json()
    i = item["id"]
    post = recorded_posterior(run_dir, 3)  # an in-sample run's last 3 epochs, from the logits recorded
    assert [t["label"] for t in item["top"]] == [run.classes[j] for j in np.argsort(-post[i])[:3]]
    ctx = c.get(f"/api/context/{i}").json()
    emb = recording_dir(run_dir).load().embedding
    e = (emb - emb.mean(0)) / emb.std(0)  # the features are standardised
    given = run.column("given_label_id")
    for grp in ctx["neighbours"]:
        cls = run.classes.index(grp["label"])
        ids = grp["ids"]
        assert len(ids) == 6 and i not in ids and (given[ids] == cls).all()
        # nearest first: cosine similarity to sample i (8 dims: all kept)
        sims = e[ids] @ e[i] / np.linalg.norm(e[ids], axis=1) / np.linalg.norm(e[i])
        assert np.all(np.diff(sims) <= 1e-6)
    assert ctx["neighbours"][0]["role"] == "given"
    traj = ctx["trajectory"]
    pg = recording_dir(run_dir).load().runs[0].dynamics.epochs("p_given")[:, i]
    np.testing.assert_allclose(traj["p_given"], pg, atol=1e-3)  # float16 cache
    assert traj["view"] == "in-sample" and all(-1 <= v <= 1 for v in traj["signed_entropy"])
    assert (run_dir / REVIEW_CONTEXT).is_file()  # cached: a second context reads the file
    assert ReviewContext(run).trajectory(i) == traj
    assert ctx["features"] == "the embedding of the scan's network"


def test_a_cross_fitted_runs_features_say_they_are_the_fold_models(tmp_path: Path) -> None:
    from labeltrace.relabel.features import run_features

    rd = make_run(tmp_path, n=40, k=3, seed=5, crossfit=True, embedding=True)
    f = run_features(open_run(rd))
    assert f.source == "the embeddings of the scan's fold models, side by side"
    assert f.values.shape[0] == 40


def test_context_falls_back_to_shrunk_images(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3, seed=3)
    ctx = TestClient(create_app(rd), base_url=LOCAL).get("/api/context/4").json()
    assert ctx["features"] == "the images shrunk to 16 x 16 pixels"
    assert all(len(g["ids"]) == 6 for g in ctx["neighbours"])


# --------------------------------------------------------------------------- cross-fitted queue
def test_queue_of_a_crossfit_run_uses_the_held_out_posterior(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=40, k=3, seed=4, crossfit=True)
    run = open_run(rd)
    qp = queue_posterior(run)
    held = Recorder.load(recording_dir(rd).run_file(0)).dynamics()
    np.testing.assert_allclose(qp.probs, held.mean_posterior(), atol=1e-12)
    assert (qp.window, qp.epochs, qp.held_out) == ("mean", None, True)
    assert qp.describe() == "held-out (cross-fitted), mean over every epoch"
    q = write_queue(rd, tmp_path / "q.csv", method="cross_entropy")
    from labeltrace.relabel.queue import queue_meta

    meta = queue_meta(rd / "queue.parquet")
    assert meta is not None and meta["method"] == "cross_entropy" and meta["held_out"] is True
    assert q.posterior.held_out


# --------------------------------------------------------------------------- the simulator
def test_simulator_active_loop_by_propagation() -> None:
    rng = np.random.default_rng(2)
    n, k = 90, 3
    truth = np.arange(n) % k
    votes = rng.multinomial(9, [0.1, 0.1, 0.1], size=n).astype(float)
    votes[np.arange(n), truth] += 8
    feats = np.eye(k)[truth] * 3 + rng.normal(0, 1, (n, k))
    from labeltrace.relabel.head import HeadConfig

    head = HeadConfig(model="linear", epochs=3, batch_size=32)
    static = experiment.run_simulation(votes, features=feats, selectors=["cross_entropy", "oracle"],
                                       seeds=[0], noise_rate=0.2, budget=40, head=head)  # fmt: skip
    live = experiment.run_simulation(votes, features=feats, selectors=["cross_entropy", "oracle"],
                                     seeds=[0], noise_rate=0.2, budget=40, head=head,
                                     active_every=5, active_method="propagation")  # fmt: skip
    assert live.active_method == "propagation" and live.updates[0] >= 1
    assert static.updates == [0]
    # the same start: the first picks before any refresh agree
    a, b = static.results["cross_entropy"][0], live.results["cross_entropy"][0]
    assert a.picked[0] == b.picked[0] and b.n_updates >= 1
    with pytest.raises(ValueError, match="live method"):
        experiment.run_simulation(votes, features=feats, selectors=["cross_entropy"], seeds=[0],
                                  noise_rate=0.2, budget=10, head=head, active_every=5,
                                  active_method="magic")  # fmt: skip


# --------------------------------------------------------------------------- the pre-flight
def test_preflight_matches_the_single_review_expectation() -> None:
    from labeltrace.relabel.preflight import preflight

    rng = np.random.default_rng(5)
    n, k, b = 200, 4, 60
    p = rng.dirichlet(np.full(k, 0.6), size=n)
    g = rng.integers(0, k, size=n)
    est = preflight(p, g, budget=b, priority="cross_entropy", repeats=400, seed=3)
    # by hand: the b samples with the lowest p(given) get one review each, drawn from p
    top = np.argsort(p[np.arange(n), g], kind="stable")[:b]
    t = p.argmax(1)
    pt = p[top, t[top]]
    wrong = g[top] != t[top]
    want_fixed = float((wrong * pt).sum())
    want_broken = float((~wrong * (1 - pt)).sum())
    sd = float(np.sqrt((pt * (1 - pt)).sum()))
    assert abs(est.fixed - want_fixed) < 4 * sd / np.sqrt(400) + 0.5
    assert abs(est.broken - want_broken) < 4 * sd / np.sqrt(400) + 0.5
    assert est.fixed_low <= want_fixed <= est.fixed_high
    assert est.wrong == int((g != t).sum())
    assert est.message().startswith(f"relabeling {b} samples is expected to fix ") and est.samples == b
    with pytest.raises(ValueError, match="budget"):
        preflight(p, g, budget=0)


def test_the_preflight_says_reviews_when_a_sample_takes_several() -> None:
    """Under agree=2 the estimate spends B reviews on about B / 2 samples; it read "relabeling B
    samples", so a user relabelling B samples spent twice what was estimated."""
    from labeltrace.relabel.consensus import ConsensusRule
    from labeltrace.relabel.preflight import preflight

    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.full(4, 0.6), size=200)
    g = rng.integers(0, 4, size=200)
    est = preflight(p, g, budget=40, rule=ConsensusRule(agree=2), repeats=20, seed=3)
    assert est.samples is not None and est.samples <= 20  # at least two reviews a sample
    assert est.message().startswith(f"40 reviews, on {est.samples:.0f} samples on average")
    one = preflight(p, g, budget=1, rule=ConsensusRule(agree=2), repeats=5, seed=3)  # cannot settle a sample
    assert one.message().startswith("1 review, on 1 sample on average (the consensus rule can ask several")


def test_queue_budget_prints_the_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:  # fmt: skip
    from labeltrace.cli import main

    rd = make_run(tmp_path, n=40, k=3, seed=8, crossfit=True)
    assert main(["queue", str(rd), "--out", str(tmp_path / "q.csv"), "--budget", "10"]) == 0
    out = capsys.readouterr().out
    assert "(posterior: held-out (cross-fitted), mean over every epoch)" in out
    assert "relabeling 10 samples is expected to fix " in out and "in 95 % of the simulated reviews, which take the model's word for the truth" in out
    flagged = int(open_run(rd).column("is_suspect").sum())
    assert main(["queue", str(rd), "--out", str(tmp_path / "q.csv"), "--budget",
                 str(flagged + 1)]) == 0  # fmt: skip
    assert f"passes the {flagged} samples the scan flagged" in capsys.readouterr().err


def test_live_queue_ranks_with_the_queue_files_gamma_and_seed(tmp_path: Path) -> None:
    """A queue written with seed 7 keeps that seed when the page re-ranks it live: before any
    decision the live ranking is the file's order (seed 0 would shuffle another way)."""
    rd = make_run(tmp_path, n=30, k=3, seed=5)
    write_queue(rd, tmp_path / "q.csv", method="random", seed=7)
    app = create_app(rd, live=LiveConfig(every=1))
    c = TestClient(app, base_url=LOCAL)
    ranking = app.state.review.live.campaign.ranking()
    assert _ids(c, 30) == [int(i) for i in ranking]
    other = Campaign(open_run(rd).column("given_label_id"), num_classes=3, budget=None, priority="random",
                     seed=0, count_initial_label=False)  # fmt: skip
    assert [int(i) for i in other.ranking()] != _ids(c, 30)


def test_preflight_says_when_the_budget_is_more_than_the_queue_uses() -> None:
    from labeltrace.relabel.preflight import preflight

    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(3, 0.6), size=20)
    est = preflight(p, rng.integers(0, 3, size=20), budget=1000, repeats=5, seed=0)
    assert est.used is not None and 20 <= est.used < 1000
    assert est.message().startswith(f"the budget of 1000 reviews is more than the queue can use: every sample "
                                    f"settles after {est.used:.0f} reviews, which are expected to fix ")  # fmt: skip


def test_a_closed_tab_no_longer_steers_the_re_ranking() -> None:
    """A closed tab's place steered the dealing for ten minutes: the most suspect samples waited
    behind a reviewer who had gone. Its page's leave ends that place at once; the others stay."""
    lq, clock, before = _walk()
    lq.show(2, "bo", "tab-b")
    lq.show(10, "ada", "tab-a")
    lq.show(5, "ada", "tab-a2")
    lq.leave("bo", "tab-b")
    lq.leave("ada", "tab-x")  # a page with no place: nothing to end
    assert lq.places().tolist() == [5, 10]
    lq.leave("ada", "tab-a2")
    assert lq.places().tolist() == [10]
    _decide(lq, before[10])
    assert lq.order.tolist()[11:13] == [0, 1]  # all after ada: none after bo's old place


def test_an_older_request_answered_late_leaves_the_place_where_the_latest_put_it() -> None:
    lq, _, before = _walk()
    lq.show(10, "ada", "tab")
    assert lq.show(3, "ada", "tab", steer=False) == before[3]  # still shown, and pinned
    assert lq.places().tolist() == [10]
    assert lq.shown[before[3]]
