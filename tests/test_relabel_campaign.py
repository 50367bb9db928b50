"""The campaign as a state: step(), record(), the annotator protocol, re-ranking hooks, and the
priority registry's declaration of what each rule needs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labeltrace.relabel import priority as prio
from labeltrace.relabel.annotator import Annotator, FunctionAnnotator, SimulatedAnnotator
from labeltrace.relabel.campaign import Campaign, CampaignLog
from labeltrace.relabel.experiment import run_campaign
from labeltrace.relabel.queue import queue_methods
from labeltrace.relabel.votes import sample_initial_labels, vote_distribution


def _votes(n: int = 120, k: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    conc = rng.choice([0.9, 0.6, 0.4], n, p=[0.6, 0.3, 0.1])
    p = (1 - conc)[:, None] / (k - 1) * np.ones((n, k))
    p[np.arange(n), true] = conc
    return np.stack([rng.multinomial(20, row) for row in p])


def _setup(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    votes = _votes(seed=seed)
    init = sample_initial_labels(votes, temperature=2.0, seed=seed).labels
    rng = np.random.default_rng(seed + 100)
    post = rng.dirichlet(np.ones(votes.shape[1]), size=votes.shape[0])
    return votes, init, post, rng.normal(size=votes.shape[0])


def _same_log(a: CampaignLog, b: CampaignLog) -> None:
    for f in ("picked", "draws", "labels", "label_counts", "settled", "settled_at", "settled_ids",
              "settled_labels"):  # fmt: skip
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert (a.relabels_used, a.in_progress, a.n_updates) == (b.relabels_used, b.in_progress,
                                                             b.n_updates)  # fmt: skip


# --------------------------------------------------------------------------- step()


@pytest.mark.parametrize("selector", ["joint", "sei_joint", "random", "oracle"])
def test_stepping_by_hand_is_run_campaign(selector: str) -> None:
    votes, init, post, sei = _setup()
    dist = vote_distribution(votes)
    want = run_campaign(votes, init, budget=90, selector=selector, posterior=post, sei=sei, seed=3)
    c = Campaign(init, num_classes=4, budget=90, priority=selector, posterior=post, sei=sei,
                 true_dist=dist, seed=3, annotator=SimulatedAnnotator(votes, seed=3))  # fmt: skip
    steps = []
    while (s := c.step()) is not None:
        steps.append(s)
    log = c.log()
    np.testing.assert_array_equal(log.picked, want.picked)
    np.testing.assert_array_equal(log.label_counts, want.label_counts)
    np.testing.assert_array_equal(log.labels, want.final_labels)
    assert len(steps) == log.relabels_used == want.relabels_used == 90
    # every step is one vote; a settlement reports the majority label of the sample
    assert [s.relabels_used for s in steps] == list(range(1, 91))
    settled = [s for s in steps if s.settled_label >= 0]
    assert [s.sample_id for s in settled] == log.settled_ids.tolist()
    assert [s.settled_label for s in settled] == log.settled_labels.tolist()
    assert c.done and c.next_sample() is None and c.step() is None


def test_step_returns_votes_and_settles_on_strict_majority() -> None:
    # sample 1 first (custom rule); its votes 2, 2 beat the initial label 0 after a tie
    answers = iter([2, 2, 0])
    c = Campaign(np.array([0, 0]), num_classes=3, budget=3,
                 priority=prio.custom(lambda counts, post: np.array([0.0, 1.0])),
                 annotator=FunctionAnnotator(lambda i: next(answers)))  # fmt: skip
    first = c.step()
    assert first is not None and (first.sample_id, first.label, first.settled_label) == (1, 2, -1)
    assert c.in_progress == 1 and c.next_sample() == 1
    second = c.step()
    assert second is not None and second.settled_label == 2 and c.in_progress == -1
    third = c.step()
    assert third is not None and (third.sample_id, third.settled_label) == (0, 0)
    assert c.done and c.labels.tolist() == [0, 2]


def test_without_budget_runs_until_every_sample_settles() -> None:
    votes, init, post, _ = _setup(seed=1)
    c = Campaign(init, num_classes=4, budget=None, priority="cross_entropy", posterior=post,
                 annotator=SimulatedAnnotator(votes, seed=0))  # fmt: skip
    log = c.run()
    assert log.settled.all() and log.in_progress == -1 and log.budget is None
    assert log.relabels_used == log.draws.sum() == log.label_counts.sum() - init.size


# --------------------------------------------------------------------------- the annotator


class _MajorityOracle:
    """A custom annotator (not a subclass of anything): always answers the vote majority."""

    def __init__(self, votes: np.ndarray) -> None:
        self.truth = votes.argmax(1)
        self.asked: list[int] = []

    def annotate(self, ids: np.ndarray) -> np.ndarray:
        self.asked.extend(ids.tolist())
        return self.truth[ids]


def test_any_object_with_annotate_is_an_annotator() -> None:
    votes, init, post, _ = _setup()
    ann = _MajorityOracle(votes)
    assert isinstance(ann, Annotator)
    res = run_campaign(votes, init, budget=60, selector="joint", posterior=post, annotator=ann)
    assert ann.asked == np.repeat(res.picked, res.draws).tolist()
    # a perfect annotator settles a correct label in 1 vote and a wrong one in 2
    done = res.settled[res.picked]
    settled = res.picked[done]
    wrong = init[settled] != votes.argmax(1)[settled]
    np.testing.assert_array_equal(res.draws[done], np.where(wrong, 2, 1))
    np.testing.assert_array_equal(res.final_labels[settled], votes.argmax(1)[settled])
    assert res.in_progress in (-1, res.picked[-1])


def test_simulated_annotator_batches_equal_single_draws_and_follow_the_distribution() -> None:
    dist = np.array([[6.0, 3.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    ids = np.zeros(30_000, dtype=np.int64)
    ids[::3] = 1
    one = SimulatedAnnotator(dist, seed=4)
    singles = np.concatenate([one.annotate(ids[j : j + 1]) for j in range(200)])
    batch = SimulatedAnnotator(dist, seed=4).annotate(ids)
    np.testing.assert_array_equal(batch[:200], singles)  # one uniform per vote, in order
    assert one.votes_drawn == 200
    assert (batch[ids == 1] == 3).all()  # a one-class distribution always answers that class
    freq = np.bincount(batch[ids == 0], minlength=4) / (ids == 0).sum()
    assert freq[3] == 0  # never a class without mass
    np.testing.assert_allclose(freq, [0.6, 0.3, 0.1, 0.0], atol=4 * math.sqrt(0.25 / 20_000))
    other = SimulatedAnnotator(dist, seed=5).annotate(ids)
    assert not np.array_equal(batch, other)
    with pytest.raises(ValueError, match=r"sample ids \[2, 7\]"):
        one.annotate(np.array([0, 2, 7]))


def test_annotator_answers_are_checked() -> None:
    for bad, shown in ((7, "7"), (1.5, "1.5"), ("cat", "'cat'")):
        c = Campaign(np.array([0, 1]), num_classes=2, budget=2, priority="random",
                     annotator=FunctionAnnotator(lambda i, b=bad: b))  # fmt: skip
        with pytest.raises(ValueError, match=f"annotator returned label {shown} for sample id"):
            c.step()
    c = Campaign(np.array([0, 1]), num_classes=2, budget=2, priority="random")
    with pytest.raises(ValueError, match="no annotator"):
        c.step()


# --------------------------------------------------------------------------- record(): a human loop


def test_record_drives_a_campaign_without_an_annotator() -> None:
    c = Campaign(np.array([0, 1, 1]), num_classes=2, budget=4, priority="random", seed=0)
    first = c.next_sample()
    assert first == c.ranking()[0]
    step = c.record(first, 1 - c.labels[first])  # disagrees with the label: a tie, in progress
    assert step.settled_label == -1 and c.in_progress == first and c.ranking()[0] == first
    other = next(i for i in range(3) if i != first)
    with pytest.raises(ValueError, match=f"sample id {first} is short of a majority"):
        c.record(other, 0)
    done = c.record(first, 1 - c.labels[first])
    assert done.settled_label == 1 - c.initial_labels[first] and c.settled[first]
    with pytest.raises(ValueError, match=f"sample id {first} is already settled"):
        c.record(first, 0)
    with pytest.raises(ValueError, match="not a class in 0..1"):
        c.record(other, 2)
    with pytest.raises(ValueError, match="outside 0..2"):
        c.record(5, 0)
    c.record(other, int(c.labels[other]))  # agrees: settles in one vote
    last = c.next_sample()
    assert last is not None and last not in (first, other)
    c.record(last, 0)
    assert c.done and c.relabels_used == 4
    with pytest.raises(ValueError, match="budget of 4 relabels is spent"):
        c.record(last, 0)


def test_single_review_settles_on_the_first_vote() -> None:
    c = Campaign(np.array([0, 0, 0]), num_classes=3, budget=None, priority="random",
                 count_initial_label=False)  # fmt: skip
    for i, lab in ((2, 1), (0, 0), (1, 2)):
        assert c.record(i, lab).settled_label == lab
    assert c.done and c.labels.tolist() == [0, 2, 1]


# --------------------------------------------------------------------------- re-ranking hooks


def _refit(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic model of the labels: the posterior leans away from each current label."""
    k = 4
    p = np.full((labels.size, k), 0.1) + 0.6 * np.eye(k)[(labels + 1) % k]
    p = p / p.sum(1, keepdims=True)
    return p, -labels.astype(float) + 0.01 * np.arange(labels.size)


@pytest.mark.parametrize("selector", ["joint", "sei_joint"])
def test_refitting_outside_the_campaign_equals_the_callback(selector: str) -> None:
    votes, init, post, sei = _setup(seed=2)
    kw = {"num_classes": 4, "budget": 100, "priority": selector, "posterior": post, "sei": sei,
          "update_every": 12}  # fmt: skip
    inside = Campaign(init, annotator=SimulatedAnnotator(votes, seed=1), update_posterior=_refit,
                      **kw)  # fmt: skip
    inside.run()
    outside = Campaign(init, annotator=SimulatedAnnotator(votes, seed=1), **kw)
    dues = []
    while (step := outside.step()) is not None:
        assert not step.updated
        if outside.update_due:  # e.g. a background thread would start training here
            dues.append(outside.relabels_used)
            outside.set_posterior(*_refit(outside.labels))
            assert not outside.update_due
    _same_log(inside.log(), outside.log())
    assert len(dues) == inside.n_updates >= 100 // 12 - 2
    # due at the first sample boundary at or past each multiple of 12, never twice per multiple
    assert all(d >= 12 * (j + 1) for j, d in enumerate(dues))
    assert len({d // 12 for d in dues}) == len(dues)


def test_set_posterior_reranks_and_keeps_the_sample_in_progress_first() -> None:
    k, n = 3, 6
    c = Campaign(np.zeros(n, dtype=np.int64), num_classes=k, budget=20, priority="cross_entropy",
                 posterior=np.full((n, k), 1 / k))  # fmt: skip
    assert c.ranking().tolist() == list(range(n))  # ties by id
    c.record(0, 1)  # sample 0 in progress (a tie between 0 and 1)
    point = np.full((n, k), 0.05)
    point[:, 0] = 0.9
    point[4] = [0.05, 0.9, 0.05]  # the model now doubts sample 4's label
    c.set_posterior(point)
    assert c.n_updates == 1 and c.ranking()[:2].tolist() == [0, 4] and c.next_sample() == 0
    c.record(0, 1)
    assert c.settled[0] and c.next_sample() == 4
    with pytest.raises(ValueError, match=r"posterior rows must sum to 1.*\[2\]"):
        bad = point.copy()
        bad[2] = [0.5, 0.5, 0.5]
        c.set_posterior(bad)


def test_provider_called_first_when_the_rule_lacks_its_model() -> None:
    calls: list[np.ndarray] = []

    def provider(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(labels.copy())
        return np.full((4, 2), 0.5), np.array([3.0, -1.0, 2.0, 0.0])

    c = Campaign(np.array([0, 1, 0, 1]), num_classes=2, budget=10, priority="sei",
                 update_posterior=provider, update_every=100)  # fmt: skip
    assert len(calls) == 1 and c.n_updates == 1 and c.ranking().tolist() == [1, 3, 2, 0]
    with pytest.raises(ValueError, match="priority 'sei' needs sei="):
        Campaign(np.array([0, 1]), num_classes=2, budget=2, priority="sei")
    with pytest.raises(ValueError, match="update_posterior needs update_every"):
        Campaign(
            np.array([0, 1]), num_classes=2, budget=2, priority="sei", update_posterior=provider
        )


def test_campaign_input_errors_name_the_ids() -> None:
    with pytest.raises(ValueError, match=r"initial_labels outside 0..2 at sample ids \[1, 3\]"):
        Campaign(np.array([0, 3, 1, 5]), num_classes=3, budget=2, priority="random")
    with pytest.raises(ValueError, match="1-D"):
        Campaign(np.zeros((2, 2), dtype=int), num_classes=3, budget=2, priority="random")
    with pytest.raises(ValueError, match="budget"):
        Campaign(np.array([0, 1]), num_classes=2, budget=0, priority="random")
    with pytest.raises(ValueError, match=r"sei has NaN.*\[1\]"):
        Campaign(np.array([0, 1]), num_classes=2, budget=2, priority="sei",
                 sei=np.array([0.0, np.nan]))  # fmt: skip
    with pytest.raises(ValueError, match="unknown selector 'best'"):
        Campaign(np.array([0, 1]), num_classes=2, budget=2, priority="best")


# --------------------------------------------------------------------------- the registry


def test_the_registry_says_which_rules_need_a_model() -> None:
    assert prio.needing_model(prio.available()) == ["cross_entropy", "joint", "sei", "sei_joint"]
    assert not prio.get("oracle").needs_model and not prio.get("random").needs_model
    assert prio.get("oracle").needs == ("label_counts", "true_dist")
    assert prio.custom(lambda c, p: c[:, 0]).needs_model  # a custom rule gets the posterior
    assert queue_methods() == ["cross_entropy", "joint", "random", "sei", "sei_joint"]
    with pytest.raises(ValueError, match="unknown priority 'nope'; available: cross_entropy"):
        prio.get("nope")


def test_a_new_rule_is_one_priority_row() -> None:
    votes, init, post, _ = _setup()
    # least confident first: 1 - max p, declared as needing the posterior
    rule = prio.Priority("least_confident", lambda i: 1.0 - i["posterior"].max(axis=1),
                         needs=("posterior",))  # fmt: skip
    assert rule.needs_model
    res = run_campaign(votes, init, budget=40, selector=rule, posterior=post)
    first = np.argsort(-(1.0 - post.max(axis=1)), kind="stable")[: res.picked.size]
    np.testing.assert_array_equal(res.picked, first)
    assert res.selector == "least_confident"
    with pytest.raises(ValueError, match="priority 'least_confident' needs posterior="):
        run_campaign(votes, init, budget=4, selector=rule)


def test_record_refuses_a_sample_id_that_is_not_an_integer() -> None:
    """2.7 or True would be truncated to samples 2 and 1: refused, like a vote that is no class."""
    c = Campaign(np.array([0, 1, 0, 1]), num_classes=2, budget=None, priority="random", count_initial_label=False)
    for bad in (2.7, True, "1", -1, 4):
        with pytest.raises(ValueError, match="sample id"):
            c.record(bad, 1)  # type: ignore[arg-type]
    assert c.record(np.int64(2), 1).sample_id == 2 and c.record(3.0, 0).sample_id == 3
