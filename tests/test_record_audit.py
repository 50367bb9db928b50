"""Recorder inputs an own-training audit found accepted silently or refused in the wrong words:
probabilities passed as logits, NaN rows a training carries on past, one-hot labels, batch positions
as ids, a mid-epoch state restored from a torch checkpoint."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from labeltrace import Recorder

N, K = 12, 3


def _batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(N), rng.normal(size=(N, K)), rng.integers(0, K, N)


def test_probabilities_passed_as_logits_are_warned_of_once() -> None:
    """A model ending in softmax: every recorded probability came out squashed towards uniform, unsaid."""
    ids, z, y = _batch()
    probs = torch.softmax(torch.as_tensor(z), 1)
    rec = Recorder(N, K)
    with pytest.warns(UserWarning, match="the logits of this batch are probabilities"):
        rec.update(ids, probs, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.update(ids, probs, y)  # said once
        Recorder(N, K).update(ids, z, y)  # logits: nothing to say
        Recorder(N, K).update(ids, torch.log_softmax(torch.as_tensor(z), 1), y)  # log-probabilities: fine


def test_nonfinite_rows_raise_by_default_and_are_left_out_when_asked() -> None:
    ids, z, y = _batch(1)
    z[[2, 5], 1] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"NaN or Inf logits for sample ids \[2, 5\]"):
        Recorder(N, K).update(ids, z, y)
    rec = Recorder(N, K)
    with pytest.warns(UserWarning, match=r"sample ids \[2, 5\]: left out of epoch 1 .*2 rows left out so far"):
        rec.update(ids, z, y, nonfinite="skip")
    rec.end_epoch()
    seen = rec.dynamics().n_seen
    assert seen[[2, 5]].tolist() == [0, 0] and (np.delete(seen, [2, 5]) == 1).all()
    assert rec.nonfinite_skipped == 2
    with pytest.raises(ValueError, match="nonfinite must be 'raise' or 'skip'"):
        rec.update(ids, z, y, nonfinite="drop")


def test_one_hot_labels_are_refused_with_the_class_ids_to_pass() -> None:
    ids, z, y = _batch(2)
    with pytest.raises(ValueError, match=r"labels must be 1-D, got shape \(12, 3\): one-hot .*labels.argmax\(1\)"):
        Recorder(N, K).update(ids, z, np.eye(K)[y])
    with pytest.raises(ValueError, match=r"labels must be 1-D, got shape \(12, 1\)$"):
        Recorder(N, K).update(ids, z, y[:, None])


def test_batch_positions_as_ids_are_named_as_a_cause_of_a_changed_label() -> None:
    """Positions under a shuffling loader pass epoch 1 and fail at epoch 2 as 'the label changed'."""
    ids, z, y = _batch(3)
    rec = Recorder(N, K)
    rec.update(ids, z, y)
    rec.end_epoch()
    perm = np.random.default_rng(0).permutation(N)
    with pytest.raises(ValueError, match=r"label of a sample changed.*or the ids are not the samples' indices"):
        rec.update(ids, z, y[perm])  # positions 0..N-1 again, the labels of other samples


def test_a_mid_epoch_state_from_a_torch_checkpoint_is_warned_of() -> None:
    """Recorder.load warned of pending updates; from_state_dict, the torch-checkpoint route, said nothing."""
    ids, z, y = _batch(4)
    rec = Recorder(N, K)
    rec.update(ids, z, y)
    rec.end_epoch()
    rec.update(ids[:5], z[:5], y[:5])  # saved mid-epoch
    state = rec.state_dict(tensors=True)
    with pytest.warns(UserWarning, match=r"saved mid-epoch, with 5 samples' updates of epoch 2 .*clear_pending"):
        back = Recorder.from_state_dict(state)
    assert back.epoch_in_progress
    rec.end_epoch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Recorder.from_state_dict(rec.state_dict(tensors=True))  # between epochs: nothing to say


def test_a_torch_checkpoint_state_reads_its_files_after_their_folder_moved(tmp_path) -> None:
    """state_dict() keeps the dynamics folder's absolute path; after the project moved, the state could
    not be read back (base= did not help) and the error offered no way out."""
    import shutil

    ids, z, y = _batch(5)
    rec = Recorder(N, K, directory=tmp_path / "old" / "dyn")
    for _ in range(2):
        rec.update(ids, z, y)
        rec.end_epoch()
    state = rec.state_dict(tensors=True)
    want = rec.dynamics().epochs("p_given").copy()
    shutil.move(tmp_path / "old", tmp_path / "new")
    with pytest.raises(ValueError, match=r"old/dyn, which is not a folder \(moved since.*pass directory="):
        Recorder.from_state_dict(state)
    back = Recorder.from_state_dict(state, directory=tmp_path / "new" / "dyn")
    np.testing.assert_array_equal(back.dynamics().epochs("p_given"), want)
    assert back.directory == tmp_path / "new" / "dyn"
