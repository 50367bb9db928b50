"""The functional API called on a user's own arrays (a review of it as scikit-learn or cleanlab
users call it): each case returned a silently wrong value, truncated an argument, or raised an
error that did not name the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labeltrace.decide.ranking import rank_of
from labeltrace.record import Recorder
from labeltrace.score import trajectory as T
from labeltrace.score.confident import find_label_issues
from labeltrace.score.knn import knn_vote, label_shares
from labeltrace.score.validate import validate_probs


@pytest.mark.parametrize("bad", [-1, 3])
def test_label_shares_refuses_labels_outside_the_classes(bad: int) -> None:
    """A label -1 or K was binned into the neighbouring sample's row: rows summed to 1.5 / 0.5."""
    nb = np.array([[1, 2], [0, 2], [0, 1]])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\); sample ids \[1\]"):
        label_shares(nb, np.array([0, bad, 2]), 3)


def test_label_shares_refuses_a_missing_neighbour() -> None:
    """-1 (an index's "no neighbour") silently read the last sample's label."""
    with pytest.raises(ValueError, match=r"sample ids \[2\] hold others"):
        label_shares(np.array([[1, 2], [0, 2], [0, -1]]), np.array([0, 1, 2]), 3)


def test_label_shares_counts_each_neighbour_once() -> None:
    shares = label_shares(np.array([[1, 2], [0, 2], [0, 1]]), np.array([0, 1, 1]), 2)
    assert shares.tolist() == [[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]]


def _dyn(epochs: int = 3):
    rec = Recorder(num_samples=4, num_classes=2)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        rec.update([0, 1, 2, 3], rng.normal(size=(4, 2)), [0, 1, 0, 1])
        rec.end_epoch()
    return rec.dynamics()


def test_a_registered_score_without_a_docstring_is_described_as_empty() -> None:
    @T.register("test_api_inputs_nodoc")
    def nodoc(dyn, **kw):  # noqa: ANN001, ANN003, ANN202
        return np.zeros(dyn.num_samples)

    try:
        assert T.describe("test_api_inputs_nodoc") == ""  # was an IndexError
        # a score taking **kw accepts any option (it was refused: "takes no 'epochs'")
        assert T.compute("test_api_inputs_nodoc", _dyn(), epochs=2).shape == (4,)
    finally:
        T._REGISTRY.pop("test_api_inputs_nodoc")


def test_a_score_of_the_wrong_shape_is_a_value_error_naming_it() -> None:
    @T.register("test_api_inputs_shape")
    def wrong(dyn):  # noqa: ANN001, ANN202
        """Two values too many."""
        return np.zeros(dyn.num_samples + 2)

    try:
        with pytest.raises(ValueError, match=r"'test_api_inputs_shape' returned shape \(6,\).*\(4,\)"):
            T.compute("test_api_inputs_shape", _dyn())
    finally:
        T._REGISTRY.pop("test_api_inputs_shape")


@pytest.mark.parametrize("epoch", [2.9, 1.0, True])
def test_an_epoch_that_is_not_an_int_is_refused_not_truncated(epoch: object) -> None:
    """epoch=2.9 read epoch 2 and epoch=True epoch 1."""
    with pytest.raises(ValueError, match="epoch must be an int"):
        T.compute("se_at", _dyn(), epoch=epoch)


def test_posterior_last_that_is_not_an_int_is_refused() -> None:
    d = _dyn()
    with pytest.raises(ValueError, match="last must be an int"):
        d.posterior(last=1.5)
    np.testing.assert_array_equal(d.posterior(last=np.int64(2)), d.posterior(last=2))


@pytest.mark.parametrize("kw", [{"keep_probs": 2.7}, {"max_epochs": 1.9}, {"keep_probs": -1}])
def test_recorder_counts_are_ints(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(kw))} must be an int"):
        Recorder(num_samples=4, num_classes=2, **kw)


def test_scores_of_zero_read_zero_not_minus_zero() -> None:
    """ei, loss and variability gave -0.0 for a zero (tables showed "-0")."""
    rec = Recorder(num_samples=2, num_classes=2)
    for _ in range(2):
        rec.update([0, 1], np.array([[0.0, 200.0], [200.0, 0.0]]), [1, 0])  # certain and right
        rec.end_epoch()
    d = rec.dynamics()
    for name in ("ei", "loss", "variability"):
        s = T.compute(name, d)
        assert (s == 0).all() and not np.signbit(s).any(), name


def test_frac_noise_that_is_not_a_number_is_named() -> None:
    p = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="frac_noise must be a float"):
        find_label_issues(p, np.array([0, 1, 0, 1]), filter_by="prune_by_noise_rate", frac_noise="half")


def test_rank_of_refuses_two_dimensional_scores() -> None:
    with pytest.raises(ValueError, match=r"score must be 1-D, got shape \(2, 2\)"):
        rank_of(np.zeros((2, 2)))


def test_probabilities_and_features_may_be_torch_tensors() -> None:
    """A bfloat16 tensor or one that requires grad failed inside numpy / torch."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    p = torch.softmax(logits, dim=1)
    probs, labels = validate_probs(p, torch.tensor([0, 1, 0, 1]))
    np.testing.assert_allclose(probs, p.detach().numpy())
    assert labels.tolist() == [0, 1, 0, 1]
    feats = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]], dtype=torch.bfloat16)
    assert knn_vote(feats, [0, 0, 1, 1], k=1).tolist() == [1.0, 1.0, 1.0, 1.0]


def test_swapped_arguments_say_the_order() -> None:
    with pytest.raises(ValueError, match="the order is probs, labels"):
        validate_probs(np.array([0, 1, 0]), np.full((3, 2), 0.5))


def test_an_epoch_closed_without_updates_is_warned_of() -> None:
    """end_epoch() twice added an empty epoch silently: se_at(-1) and posterior(last=1) all NaN."""
    rec = Recorder(num_samples=2, num_classes=2)
    rec.update([0, 1], np.zeros((2, 2)), [0, 1])
    rec.end_epoch()
    with pytest.warns(UserWarning, match="epoch 2 closes with no update"):
        rec.end_epoch()
    assert rec.num_epochs == 2  # still an epoch: the training's count of epochs is kept


def test_zero_dimensional_integer_arrays_and_tensors_are_ints() -> None:
    """np.array(1) and torch.tensor(1) were accepted as epochs before ints were checked; they still
    are, while a float or a bool tensor is refused."""
    d = _dyn()
    np.testing.assert_array_equal(d.at("loss", np.array(1)), d.at("loss", 1))
    np.testing.assert_array_equal(d.at("loss", torch.tensor(-1)), d.at("loss", 2))
    for bad in (torch.tensor(1.0), torch.tensor(True), np.array(True), np.array([1])):
        with pytest.raises(ValueError, match="epoch must be an int"):
            d.at("loss", bad)


def test_a_notebook_cell_may_register_its_score_again() -> None:
    """Running the cell that registers a score a second time raised 'already registered'."""
    def make(value: float):  # noqa: ANN202
        def fn(dyn, **kw):  # noqa: ANN001, ANN003, ANN202
            return np.full(dyn.num_samples, value)

        return fn

    T.register("test_api_inputs_again")(make(1.0))
    try:
        with pytest.raises(ValueError, match=r"already registered \(register\('test_api_inputs_again', overwrite=True\)"):
            T.register("test_api_inputs_again")(make(2.0))
        T.register("test_api_inputs_again", overwrite=True)(make(2.0))
        assert T.compute("test_api_inputs_again", _dyn()).tolist() == [2.0] * 4
    finally:
        T._REGISTRY.pop("test_api_inputs_again")


def test_campaign_classes_and_a_run_in_a_notebook(tmp_path) -> None:  # noqa: ANN001
    """Campaign(num_classes=3.9) ran with 3 classes; repr(open_run(...)) printed 13,000 characters."""
    from runfactory import make_run

    from labeltrace.relabel.campaign import Campaign
    from labeltrace.rundir import open_run

    with pytest.raises(ValueError, match="num_classes"):
        Campaign(np.array([0, 1, 2, 0]), num_classes=3.9, budget=2, posterior=np.full((4, 3), 1 / 3))
    shown = repr(open_run(make_run(tmp_path, n=30, k=3, seed=1)))
    assert shown.startswith("Run(path=") and len(shown) < 300


def test_a_models_outputs_with_a_gradient_are_read_everywhere() -> None:
    """Scores and probabilities straight from a model (tensors that require grad) worked in
    labeltrace.score but raised torch's "Can't call numpy() on Tensor that requires grad" in the
    cutoffs, the metrics and the relabel functions."""
    from labeltrace.decide.cutoffs import flag, top_fraction
    from labeltrace.evaluate.metrics import detection_report, flag_top_k
    from labeltrace.relabel.preflight import preflight

    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 3, generator=g, requires_grad=True)
    logits = torch.randn(40, 6, generator=g) @ w
    y = torch.randint(0, 3, (40,), generator=g)
    scores = -torch.nn.functional.cross_entropy(logits, y, reduction="none")
    plain = scores.detach().numpy()
    assert top_fraction(scores, 0.2) == top_fraction(plain, 0.2)
    np.testing.assert_array_equal(flag(scores, -1.0), flag(plain, -1.0))
    np.testing.assert_array_equal(flag_top_k(scores, 5), flag_top_k(plain, 5))
    truth = torch.arange(40) % 5 == 0
    assert detection_report(truth, scores < -1.5, scores) == detection_report(truth.numpy(), plain < -1.5, plain)
    p = logits.softmax(1)
    a, b = preflight(p, y, budget=5, repeats=2), preflight(p.detach().numpy(), y.numpy(), budget=5, repeats=2)
    assert a == b


def test_a_cross_fitted_runs_dynamics_must_name_their_view(tmp_path) -> None:  # noqa: ANN001
    """open_run(d).dynamics() of a default (crossfit) run gave the held-out view, while the table's sei
    and `labeltrace score` read the in-sample one: compute('sei', run.dynamics()) disagreed with the
    sei column by up to 3.1, silently."""
    from runfactory import make_run

    from labeltrace.rundir import open_run

    run = open_run(make_run(tmp_path / "cf", n=40, k=3, seed=8, crossfit=True))
    with pytest.raises(ValueError, match=r"cross-fitted run with two views.*held_out=True.*held_out=False"):
        run.dynamics()
    assert run.dynamics(held_out=False) is not None and run.dynamics(held_out=True).num_samples == 40
    np.testing.assert_array_equal(run.dynamics(held_out=False).mean("p_given"), run.in_sample_dynamics(0).mean("p_given"))
    plain = open_run(make_run(tmp_path / "in", n=40, k=3, seed=8))
    assert plain.dynamics().num_samples == plain.dynamics(held_out=False).num_samples == 40
    with pytest.raises(ValueError, match="not cross-fitted"):
        plain.dynamics(held_out=True)


def test_the_public_functions_are_found_where_a_user_looks() -> None:
    """find_suspects did not show in dir(labeltrace) (tab completion), labeltrace.decide and
    labeltrace.evaluate exported nothing, and the cleanlab-style scores lived only in submodules."""
    import labeltrace
    import labeltrace.decide as decide
    import labeltrace.evaluate as evaluate
    import labeltrace.score as score
    from labeltrace.decide.own_run import find_suspects
    from labeltrace.score.confident import find_label_issues

    assert "find_suspects" in dir(labeltrace) and labeltrace.find_suspects is find_suspects
    assert decide.find_suspects is find_suspects and "top_fraction" in dir(decide)
    assert callable(evaluate.detection_report) and "inject" in dir(evaluate)
    assert score.find_label_issues is find_label_issues and callable(score.knn_vote)
    for module in (decide, evaluate, score):
        assert all(callable(getattr(module, n)) for n in module.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        decide.nothing  # noqa: B018
