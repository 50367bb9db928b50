"""write_run / scan --recording: a run directory from a training the user ran, read by the report,
the review page, the exports and the queue as a scan's."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from labeltrace import Recorder, write_run
from labeltrace.cli import main
from labeltrace.data import from_arrays, from_folder
from labeltrace.export.rescan import rescan_command
from labeltrace.review import create_app
from labeltrace.rundir import RunDirConflict, open_run

torch.set_num_threads(1)
N, K, SIDE = 150, 3, 6


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (N, SIDE, SIDE) uint8, given labels, true labels): three classes of blobs, 20 flipped."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, K, N)
    base = rng.integers(0, 60, (N, SIDE, SIDE))
    for c in range(K):  # class c: a bright row c * 2
        base[true == c, 2 * c, :] += 180
    given = true.copy()
    wrong = rng.choice(N, 20, replace=False)
    given[wrong] = (given[wrong] + 1) % K
    return base.astype(np.uint8), given, true


def _train(images: np.ndarray, labels: np.ndarray, epochs: int = 8, recorder: Recorder | None = None,
           logits_out: list | None = None) -> Recorder:  # fmt: skip
    """A linear model on the flattened images, every batch recorded (and its logits kept by epoch)."""
    x = torch.tensor(images.reshape(len(images), -1) / 255.0, dtype=torch.float32)
    y = torch.tensor(labels)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], K)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    rec = recorder or Recorder(len(images), K)
    for _ in range(epochs):
        epoch_logits = np.zeros((len(images), K))
        for ids in torch.randperm(len(images)).split(32):
            z = model(x[ids])
            loss = torch.nn.functional.cross_entropy(z, y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.update(ids, z, y[ids])
            epoch_logits[ids.numpy()] = z.detach().double().numpy()
        rec.end_epoch()
        if logits_out is not None:
            logits_out.append(epoch_logits)
    return rec


def _dataset(images: np.ndarray, given: np.ndarray):  # noqa: ANN202 - an ImageDataset
    return from_arrays(images, given, classes=["a", "b", "c"])


def test_write_run_scores_the_recording_as_its_logits_say(tmp_path: Path) -> None:
    images, given, true = _data()
    logits: list[np.ndarray] = []
    rec = _train(images, given, logits_out=logits)
    res = write_run(_dataset(images, given), rec, tmp_path / "run", true_labels=true, seconds=1.5, log=lambda s: None)
    run = open_run(tmp_path / "run")
    # expected values from the logits, by hand: the single score is minus the mean cross-entropy,
    # the suggestion the argmax of the mean softmax of the last 5 epochs
    z = np.stack(logits)  # (T, N, K)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    loss = -logp[:, np.arange(N), given].mean(0)
    np.testing.assert_allclose(run.column("score"), -loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(run.column("suggested_label_id"), np.exp(logp[-5:]).mean(0).argmax(1))
    flagged = run.column("is_suspect").astype(bool)
    assert flagged.sum() == res.meta["detector"]["n_hat"] and res.meta["detector"]["name"] == "single"
    wrong = given != true
    assert (flagged & wrong).sum() >= 15 and flagged.sum() <= 40  # 20 wrong
    assert run.own_training and run.meta["model"] == "own training" and run.meta["cost"]["seconds"] == 1.5
    assert run.meta["metrics"]["n_noisy"] == 20 and run.meta["train"]["epochs"] == 8
    # the recording itself is in the run: `score` and the queue read it
    np.testing.assert_allclose(-run.dynamics(0).mean("loss"), run.column("score"), rtol=1e-6)
    assert run.recording().runs[0].dynamics.num_epochs == 8


def test_the_consumers_read_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, given, _ = _data()
    rec = _train(images, given)
    feats = images.reshape(N, -1).astype(np.float32) + 1.0
    out = tmp_path / "run"
    write_run(_dataset(images, given), rec, out, features=feats, log=lambda s: None)
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()
    assert main(["queue", str(out), "--budget", "10", "--out", str(tmp_path / "q.csv")]) == 0
    with open(tmp_path / "q.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == N
    assert main(["export", str(out), "--to", "labelstudio"]) == 0
    c = TestClient(create_app(out), base_url="http://127.0.0.1")  # type: ignore[arg-type]
    item = c.get("/api/item/0").json()
    assert c.post("/api/decision", json={"sample_id": item["id"], "decision": "c"}).status_code == 200
    capsys.readouterr()
    assert main(["review", str(out), "--export", str(tmp_path / "clean.csv")]) == 0
    said = capsys.readouterr().out
    assert "to check the cleaned labels" not in said  # in-memory images: no command reads them again
    assert rescan_command(open_run(out), tmp_path / "clean.csv") is None
    # the embedding the queue and live re-ranking read: the features given
    assert np.load(out / "dynamics" / "embedding.npy").shape == (N, SIDE * SIDE)


def test_a_dataset_in_another_order_is_refused_by_sample(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=2)
    order = np.roll(np.arange(N), 1)
    with pytest.raises(ValueError, match=r"samples were recorded with another label than the dataset gives them: "
                                         r"\d+ \(\d+: recorded '[abc]', the dataset's '[abc]'\)"):  # fmt: skip
        write_run(_dataset(images[order], given[order]), rec, tmp_path / "run", log=lambda s: None)
    assert not (tmp_path / "run").exists()  # refused before the folder is made
    with pytest.raises(ValueError, match="the recorder holds 150 samples, the dataset 149"):
        write_run(_dataset(images[:-1], given[:-1]), rec, tmp_path / "run", log=lambda s: None)
    four = Recorder(N, K + 1)
    four.update(np.arange(N), np.zeros((N, K + 1)), given)
    four.end_epoch()
    with pytest.raises(ValueError, match="4 classes \\(one more: a model with an auxiliary class.*or a class the "
                                         "dataset's labels never name.*give it all 4, in the logits' order"):
        write_run(_dataset(images, given), four, tmp_path / "run", log=lambda s: None)
    with pytest.raises(TypeError, match="recorder must be a labeltrace Recorder"):
        write_run(_dataset(images, given), rec.dynamics(), tmp_path / "run", log=lambda s: None)


def test_an_unclosed_epoch_is_left_out_and_the_callers_recorder_kept(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=3)
    rec.update(np.arange(10), np.zeros((10, K)), given[:10])  # an epoch begun, not closed
    # epochs counted from 1: "epoch 3 not closed ... holds the 3 closed epochs" read as a contradiction
    with pytest.warns(UserWarning, match=r"updates of an epoch not closed \(epoch 4\); the run holds the 3 closed "
                                         r"epochs before it only"):  # fmt: skip
        write_run(_dataset(images, given), rec, tmp_path / "run", log=lambda s: None)
    assert rec.epoch_in_progress  # the caller's recorder as it was
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the run's copy holds no pending updates: no mid-epoch warning on load
        run = open_run(tmp_path / "run")
        assert run.dynamics(0).num_epochs == 3


def test_a_recorder_on_files_is_copied_into_the_run(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=3, recorder=Recorder(N, K, directory=tmp_path / "mine"))
    write_run(_dataset(images, given), rec, tmp_path / "run", log=lambda s: None)
    want = open_run(tmp_path / "run").dynamics(0).epochs("loss").copy()
    shutil.rmtree(tmp_path / "mine")  # the user's files gone: the run stands alone
    np.testing.assert_array_equal(open_run(tmp_path / "run").dynamics(0).epochs("loss"), want)


def test_the_folder_is_claimed_as_a_scans(tmp_path: Path) -> None:
    images, given, _ = _data()
    ds, out = _dataset(images, given), tmp_path / "run"
    rec = _train(images, given, epochs=3)
    write_run(ds, rec, out, log=lambda s: None)
    write_run(ds, rec, out, log=lambda s: None)  # the same recording again: rewritten
    c = TestClient(create_app(out), base_url="http://127.0.0.1")  # type: ignore[arg-type]
    assert c.post("/api/decision", json={"sample_id": 7, "decision": "b"}).status_code == 200
    more = _train(images, given, epochs=4)  # trained on: another recording of the same samples
    with pytest.raises(RunDirConflict, match="own_training"):
        write_run(ds, more, out, log=lambda s: None)
    said: list[str] = []
    write_run(ds, more, out, force=True, log=said.append)
    assert open_run(out).dynamics(0).num_epochs == 4
    assert any("kept the review decisions" in s for s in said)  # decisions about these very samples stay
    c = TestClient(create_app(out), base_url="http://127.0.0.1")  # type: ignore[arg-type]
    assert c.get("/api/history/7").json()[0]["decision"] == "b"


def test_knn_k_without_features_is_not_read_and_does_not_block_the_same_run(tmp_path: Path) -> None:
    """`write_run(ds, rec, out, knn_k=5)` without features: knn_k was never read but entered the run's
    fingerprint, so the same run written again without it was refused as another configuration. As
    a scan's setting its detector does not read, it is said not used and the run holds the default."""
    images, given, _ = _data()
    ds, out = _dataset(images, given), tmp_path / "run"
    rec = _train(images, given, epochs=3)
    said: list[str] = []
    write_run(ds, rec, out, knn_k=5, log=said.append)
    write_run(ds, rec, out, log=lambda s: None)  # the same run: rewritten, not refused
    assert any(s.startswith("knn_k 5: not used without features") for s in said), said
    assert json.loads((out / "run.json").read_text())["config"]["knn_k"] == 10


def test_no_softmax_kept_is_refused_before_the_folder_is_touched(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=3, recorder=Recorder(N, K, keep_probs=0))
    feats = images.reshape(N, -1).astype(np.float32) + 1.0
    with pytest.raises(ValueError, match=r"kept no softmax \(Recorder\(keep_probs=0\)\), which the suggested labels, "
                                         "the queue and the review page read"):  # fmt: skip
        write_run(_dataset(images, given), rec, tmp_path / "run", features=feats, log=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_samples_a_sampler_left_out_of_the_last_epochs_read_their_whole_trajectory(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=6)
    late = np.arange(10)  # drawn in none of the last 5 epochs, the softmax kept (a sampler with replacement)
    x = torch.tensor(images.reshape(N, -1) / 255.0, dtype=torch.float32)
    for _ in range(5):
        rest = np.setdiff1d(np.arange(N), late)
        rec.update(rest, torch.zeros(rest.size, K) + x[rest, :K], given[rest])
        rec.end_epoch()
    out = tmp_path / "run"
    write_run(_dataset(images, given), rec, out, log=lambda s: None)
    dyn = rec.dynamics()
    assert np.isnan(dyn.posterior(last=5)[late]).all()  # what the last epochs say of them: nothing
    np.testing.assert_array_equal(open_run(out).column("suggested_label_id")[late], dyn.mean_posterior()[late].argmax(1))
    assert main(["queue", str(out), "--out", str(tmp_path / "q.csv")]) == 0  # no NaN in the queue's posterior
    c = TestClient(create_app(out), base_url="http://127.0.0.1")  # type: ignore[arg-type]
    positions = {c.get(f"/api/item/{p}").json()["id"]: p for p in range(N)}
    item = c.get(f"/api/item/{positions[3]}")
    assert item.status_code == 200 and item.json()["top"]  # the review page shows the model's view of sample 3


def test_the_recorder_as_the_integrations_hold_it(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=2)

    class Held:  # a callback under DDP: .recorder is a DistributedRecorder, whose .recorder is rank 0's Recorder
        def __init__(self, inner: object) -> None:
            self.recorder = inner

    ds = _dataset(images, given)
    write_run(ds, Held(Held(rec)), tmp_path / "a", seconds=np.float32(3.5), log=lambda s: None)
    assert open_run(tmp_path / "a").meta["cost"]["seconds"] == 3.5
    write_run(ds, rec.state_dict(), tmp_path / "b", log=lambda s: None)  # a checkpoint's state
    lightning = {"recorder": rec.state_dict(tensors=True), "pending_epoch": None}  # a Lightning callback's state
    write_run(ds, lightning, tmp_path / "b", log=lambda s: None)
    own = {"recorder": rec.state_dict(), "meta": {"epoch": 3}}  # a user's checkpoint entry with a meta of its own
    write_run(ds, own, tmp_path / "b", log=lambda s: None)
    with pytest.raises(ValueError, match="a DistributedRecorder's on a rank other than 0"):
        write_run(ds, {"recorder": {}, "pending_epoch": None}, tmp_path / "c", log=lambda s: None)

    class OtherRank:  # a DistributedRecorder on rank 1
        @property
        def recorder(self) -> Recorder:
            raise RuntimeError("recorder lives on rank 0 only (this is rank 1)")

    with pytest.raises(RuntimeError, match=r"this is rank 1\): call it on rank 0 only"):
        write_run(ds, Held(OtherRank()), tmp_path / "c", log=lambda s: None)
    np.testing.assert_array_equal(open_run(tmp_path / "b").column("score"), open_run(tmp_path / "a").column("score"))
    with pytest.raises(ValueError, match=r"is a folder: give the file rec.save\(path\) wrote"):
        write_run(ds, tmp_path / "a", tmp_path / "c", log=lambda s: None)
    torch.save({"recorder": rec.state_dict(tensors=True)}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match=r"is not a recorder file rec.save\(path\) wrote .*torch.load\(path\)\['callbacks'\]"):
        write_run(ds, tmp_path / "ckpt.pt", tmp_path / "c", log=lambda s: None)
    # a Lightning checkpoint given to the CLI: the message's shell command makes the file scan reads
    torch.save({"callbacks": {"RecorderCallback": {"recorder": rec.state_dict(tensors=True), "pending_epoch": -1}}},
               tmp_path / "last.ckpt")
    with pytest.raises(ValueError, match=r"from the shell: python -c") as err:
        write_run(ds, tmp_path / "last.ckpt", tmp_path / "c", log=lambda s: None)
    code = str(err.value).split('python -c "')[1].rsplit('"', 1)[0]
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    write_run(ds, tmp_path / "recorder.npz", tmp_path / "d", log=lambda s: None)
    np.testing.assert_array_equal(open_run(tmp_path / "d").column("score"), open_run(tmp_path / "a").column("score"))
    with pytest.raises(ValueError, match="no such recorder file"):
        write_run(ds, tmp_path / "nope.npz", tmp_path / "c", log=lambda s: None)
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
        write_run(ds, rec, tmp_path / "c", seconds=-1, log=lambda s: None)


def test_warnings_about_the_recording_are_kept_for_the_report(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = Recorder(N, K)
    rec.update(np.arange(5), np.zeros((5, K)), given[:5])  # 5 samples seen in one epoch of 4
    for _ in range(4):
        rest = np.arange(5, N)
        rec.update(rest, np.eye(K)[given[rest]] * 3, given[rest])
        rec.end_epoch()
    with pytest.warns(RuntimeWarning, match="fewer than half as many epochs"):
        write_run(_dataset(images, given), rec, tmp_path / "run", log=lambda s: None)
    assert any("fewer than half as many epochs" in w for w in open_run(tmp_path / "run").meta["warnings"])


def _folder(tmp_path: Path) -> tuple[Path, np.ndarray]:
    images, given, true = _data()
    root = tmp_path / "data"
    for i, (img, lab) in enumerate(zip(images, given, strict=True)):
        (root / "abc"[lab]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "abc"[lab] / f"{i:03d}.png")
    return root, true


def test_a_folder_with_files_imagefolder_does_not_read_names_them(tmp_path: Path) -> None:
    """A training through torchvision's ImageFolder skips .gif files the folder reader takes: 'the
    recorder holds 150 samples, the dataset 152' named neither the files nor paths= (an audit's finding)."""
    from PIL import Image

    root, _ = _folder(tmp_path)
    images, given, _ = _data()
    rec = _train(images, given, epochs=2)
    for c in "ab":
        Image.fromarray(images[0]).save(root / c / f"zz_{c}.gif")
    with pytest.raises(ValueError, match=r"the recorder holds 150 samples, the dataset 152: .*; 2 files of the "
                                         r"dataset have an extension torchvision's ImageFolder does not read "
                                         r"\(a/zz_a\.gif, b/zz_b\.gif\): .*paths="):
        write_run(from_folder(root), rec, tmp_path / "run", log=lambda s: None)
    for c in "ab":
        (root / c / f"zz_{c}.gif").unlink()
    Image.fromarray(images[0]).save(root / "a" / ".hidden.png")  # ImageFolder reads it, from_folder does not
    more = _train(np.concatenate([images, images[:1]]), np.concatenate([given, given[:1]]), epochs=2)
    with pytest.warns(UserWarning, match="hidden files"), \
            pytest.raises(ValueError, match=r"holds 151 samples, the dataset 150: .*; the folder reader leaves out "
                                            r"hidden files \(\.name\), which torchvision's ImageFolder reads"):
        write_run(from_folder(root), more, tmp_path / "run", log=lambda s: None)


def test_the_run_written_again_reads_its_copies_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_run decoded every image file for the copies each time; writing the same recording
    again (another detector, --force) reads back the copies the run found while its files are unchanged."""
    root, _ = _folder(tmp_path)
    shutil.copy(root / "a" / next(iter(sorted(p.name for p in (root / "a").iterdir()))), root / "b" / "copy.png")
    ds = from_folder(root)
    imgs = np.stack([ds.load(i)[..., 0] for i in range(len(ds))])
    rec = _train((imgs * 255).astype(np.uint8), ds.labels, epochs=4)
    out = tmp_path / "run"
    write_run(ds, rec, out, log=lambda s: None)
    first = open_run(out).column("duplicate_group").tolist()
    assert sorted(first).count(0) == 2

    def refused(*a: object, **k: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr("labeltrace.own_training.dataset_copies", refused)
    write_run(from_folder(root), rec, out, detector="single_sei", force=True, log=lambda s: None)
    assert open_run(out).column("duplicate_group").tolist() == first


def test_cli_scan_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = _folder(tmp_path)
    ds = from_folder(root)  # the training reads the images in labeltrace's order: sample i is id i
    imgs = np.stack([ds.load(i)[..., 0] for i in range(len(ds))])
    rec = _train((imgs * 255).astype(np.uint8), ds.labels, epochs=4)
    rec.save(tmp_path / "rec.npz")
    np.save(tmp_path / "emb.npy", imgs.reshape(len(ds), -1) + 1.0)
    out = tmp_path / "run"
    argv = ["scan", str(root), "--recording", str(tmp_path / "rec.npz"), "--features", str(tmp_path / "emb.npy"),
            "--out", str(out), "--csv", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert said.startswith("labeltrace (your own training) — 150 samples, 3 classes, 4 epochs x 1 run, written in")
    meta = json.loads((out / "run.json").read_text())
    assert meta["command"][1:] == argv and meta["data"]["kind"] == "folder" and (out / "samples.csv").is_file()
    assert open_run(out).image(0).shape[:2] == (SIDE, SIDE)  # the report's and review's images: DATA's files
    capsys.readouterr()
    assert main(["review", str(out), "--export", str(tmp_path / "clean.csv")]) == 0
    said = capsys.readouterr().out
    assert "to check the cleaned labels: train on them as before, recording each row i of" in said
    cmd = said.split("then: ")[1].strip()  # round 2: your training on the cleaned labels, recorded
    assert "--recording NEW_RECORDER.npz --features NEW_FEATURES.npy" in cmd and "--labels" in cmd
    import shlex

    from labeltrace.cli import build_parser

    parsed = build_parser().parse_args(shlex.split(cmd)[1:])
    assert parsed.recording == "NEW_RECORDER.npz" and parsed.labels == str(tmp_path / "clean.csv")
    assert main([*argv, "--detector", "single_sei", "--force"]) == 0
    for extra, said_err in ((["--epochs", "3"], "--epochs set a training labeltrace would run"),
                            (["--truth-column", "t"], "--truth-column needs a manifest"),
                            (["--detector", "sei"], "--detector one of single"),
                            (["--model", "small-cnn"], "--model set a training"),
                            (["--seed", "0"], "--seed set a training"),  # at its default, but named
                            (["--sched", "cosine"], "--schedule set a training")):  # and abbreviated  # fmt: skip
        assert main([*argv, *extra]) == 2
        assert said_err in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "absent"), "--recording", str(tmp_path / "run"), "--out", str(tmp_path / "x")]) == 2
    assert "is a folder: give the file rec.save(path) wrote" in capsys.readouterr().err  # said before DATA is read
    assert main(["scan", str(root), "--features", str(tmp_path / "emb.npy"), "--out", str(tmp_path / "x")]) == 2
    assert "--features gives the embedding of your own training" in capsys.readouterr().err
    np.save(tmp_path / "short.npy", np.ones((3, 2)))
    assert main([*argv[:4], "--features", str(tmp_path / "short.npy"), "--out", str(tmp_path / "y")]) == 2
    assert "one row per sample of DATA (150), in its order" in capsys.readouterr().err


def test_groups_keep_a_twin_from_vouching_for_its_wrong_label(tmp_path: Path) -> None:
    import dataclasses

    images, given, true = _data()
    twins = np.repeat(np.arange(N), 2)  # each image twice (two views of one patient), same label
    imgs2, given2 = images[twins].copy(), given[twins]
    imgs2[1::2, 0, 0] ^= 1  # the second view differs by a pixel: not an exact copy
    rec = _train(imgs2, given2, epochs=4)
    feats = imgs2.reshape(2 * N, -1).astype(np.float32) + 1.0
    plain = _dataset(imgs2, given2)
    grouped = dataclasses.replace(plain, groups=tuple(f"p{i}" for i in twins))
    a = write_run(plain, rec, tmp_path / "plain", features=feats, log=lambda s: None)
    b = write_run(grouped, rec, tmp_path / "grouped", features=feats, log=lambda s: None)
    wrong = (given != true)[twins]
    vote_plain = a.table.column("knn_vote").to_numpy()
    vote_grouped = b.table.column("knn_vote").to_numpy()
    # the twin, its nearest neighbour with the same wrong label, no longer votes for it
    assert vote_grouped[wrong].mean() < vote_plain[wrong].mean() - 0.05
    assert b.table.column("group").to_pylist()[:2] == ["p0", "p0"] and "group" not in a.table.column_names
    # exact copies need no groups: the kNN leaves a copy out of its twin's neighbours by itself
    copies = imgs2.copy()
    copies[1::2] = copies[::2]
    c = write_run(_dataset(copies, given2), rec, tmp_path / "copies",
                  features=copies.reshape(2 * N, -1).astype(np.float32) + 1.0, log=lambda s: None)  # fmt: skip
    vote_copies = c.table.column("knn_vote").to_numpy()
    assert vote_copies[wrong].mean() < vote_plain[wrong].mean() - 0.05
    assert c.table.column("duplicate_group").to_pylist()[:4] == [0, 0, 1, 1]


def test_a_run_that_did_not_finish_says_to_write_it_again(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=2)
    write_run(_dataset(images, given), rec, tmp_path / "run", log=lambda s: None)
    (tmp_path / "run" / "run.json").unlink()  # stopped before its last file
    with pytest.raises(ValueError, match="from your own training that has not finished: write it again"):
        open_run(tmp_path / "run")
    write_run(_dataset(images, given), rec, tmp_path / "run", log=lambda s: None)  # the same recording: finished now
    assert open_run(tmp_path / "run").own_training


def _imagefolder_order(root: Path) -> list[str]:
    """torchvision's ImageFolder order, as its make_dataset walks (torchvision does not import here)."""
    import os

    out = []
    for c in sorted(e.name for e in os.scandir(root) if e.is_dir()):
        for top, _, names in sorted(os.walk(root / c, followlinks=True)):
            out += [os.path.join(top, f) for f in sorted(names)]
    return out


def test_paths_put_the_dataset_in_the_trainings_order(tmp_path: Path) -> None:
    images, given, _ = _data()
    root = tmp_path / "data"
    files = []
    for i, (img, lab) in enumerate(zip(images, given, strict=True)):
        sub = root / "abc"[lab] / ("" if i % 3 else f"batch{lab}{i % 2}")  # files beside sub-folders: ImageFolder's order
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(sub / f"img{i:03d}.png")
        files.append(sub / f"img{i:03d}.png")
    ds = from_folder(root)
    theirs = [str(Path(p).resolve()) for p in _imagefolder_order(root)]  # files beside folders: another order
    assert sorted(theirs) == sorted(str(ds.path(i)) for i in range(N)) != theirs
    order = np.array([files.index(Path(p)) for p in _imagefolder_order(root)])  # the training's: ImageFolder's
    logits: list[np.ndarray] = []
    rec = _train(images[order], given[order], epochs=3, logits_out=logits)
    with pytest.warns(UserWarning, match="which torchvision's ImageFolder lists in another order than this dataset"):
        write_run(ds, rec, tmp_path / "unordered", log=lambda s: None)  # accepted: each class's labels agree
    assert any("ImageFolder lists in another order" in w for w in open_run(tmp_path / "unordered").meta["warnings"])
    run = write_run(ds, rec, tmp_path / "run", paths=[files[i] for i in order], log=lambda s: None).table
    assert run.column("path").to_pylist() == [files[i].relative_to(root).as_posix() for i in order]
    z = logits[-1][np.arange(N), given[order]] - np.log(np.exp(logits[-1]).sum(1))
    np.testing.assert_allclose(open_run(tmp_path / "run").dynamics(0).at("loss", -1), -z, rtol=1e-5)
    rel = write_run(ds, rec, tmp_path / "rel", paths=[files[i].relative_to(root) for i in order], log=lambda s: None)
    assert rel.table.column("path").to_pylist() == run.column("path").to_pylist()  # relative to the data root
    with pytest.raises(ValueError, match="1 of the 150 paths is not an image of the dataset"):
        write_run(ds, rec, tmp_path / "x", paths=[*files[:-1], tmp_path / "other.png"], log=lambda s: None)
    with pytest.raises(ValueError, match="paths names 1 file more than once"):
        write_run(ds, rec, tmp_path / "x", paths=[*files[:-1], files[0]], log=lambda s: None)
    with pytest.raises(ValueError, match="paths names 149 of the dataset's 150 images"):
        write_run(ds, rec, tmp_path / "x", paths=files[:-1], log=lambda s: None)
    assert not (tmp_path / "x").exists()


def test_a_recorder_keeping_its_files_inside_out_is_refused(tmp_path: Path) -> None:
    images, given, _ = _data()
    out = tmp_path / "run"
    rec = _train(images, given, epochs=2, recorder=Recorder(N, K, directory=out / "dynamics"))
    for force in (False, True):
        with pytest.raises(ValueError, match="keeps its per-epoch files in .*inside out"):
            write_run(_dataset(images, given), rec, out, force=force, log=lambda s: None)
    assert rec.dynamics().epochs("loss").shape == (2, N)  # the user's recording as it was
    assert sorted(p.name for p in out.iterdir()) == ["dynamics"]


def test_recording_json_stays_json_with_unknowns(tmp_path: Path) -> None:
    images, given, _ = _data()
    rec = _train(images, given, epochs=2)
    with pytest.warns(UserWarning, match="^epoch 3 closes with no update"):  # the third, counted from 1
        rec.end_epoch()  # twice: an epoch no sample was seen in
    write_run(_dataset(images, given), rec, tmp_path / "run", log=lambda s: None)

    def refuse(c: str) -> None:
        raise ValueError(c)

    meta = json.loads((tmp_path / "run" / "dynamics" / "recording.json").read_text(), parse_constant=refuse)
    assert meta["accuracy"] == [None] and meta["seconds"] == [None]  # unknown: no NaN in the JSON
    run = open_run(tmp_path / "run")
    assert np.isnan(run.recording().accuracy[0]) and any("recorded no sample" in w for w in run.meta["warnings"])


@pytest.mark.parametrize("mode", ["full", "streaming"])
def test_an_empty_epoch_inside_the_recording_is_noted(tmp_path: Path, mode: str) -> None:
    """An epoch closed twice in the middle of a recording was noted only when it was the last (an
    audit's finding): the run said 3 epochs with no word of the empty one. Full mode names it;
    streaming mode keeps no epoch's samples and names none, as before."""
    images, given, _ = _data()
    rec = _train(images, given, epochs=1, recorder=Recorder(N, K, mode=mode))
    with pytest.warns(UserWarning, match="^epoch 2 closes with no update"):
        rec.end_epoch()
    _train(images, given, epochs=1, recorder=rec)
    write_run(_dataset(images, given), rec, tmp_path / "run", log=lambda s: None)
    run = open_run(tmp_path / "run")
    noted = [w for w in run.meta["warnings"] if "recorded no sample" in w]
    if mode == "full":
        assert noted == ["1 of the 3 recorded epochs (counted from 1: [2]) recorded no sample (end_epoch() called "
                         "twice?): each sample's scores average the epochs it was seen in"]
    else:
        assert noted == []
    assert np.isfinite(run.recording().accuracy).all()  # the last epoch has its samples: the accuracy is known


def test_cli_a_skipped_image_takes_no_id_and_few_samples_leave_features_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    images, given, _ = _data()
    n = 11  # fewer than the 10 neighbours + 2 the count reads with features
    root = tmp_path / "data"
    root.mkdir()
    rows = ["path,label"]
    for i in range(n):
        Image.fromarray(images[i]).save(root / f"{i:02d}.png")
        rows.append(f"{i:02d}.png,{'abc'[given[i]]}")
    (root / "bad.png").write_bytes(b"not a png")
    rows.insert(4, "bad.png,a")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    from labeltrace.data import from_manifest

    ds = from_manifest(root / "m.csv", on_bad_image="skip")  # the training reads what the scan reads
    rec = _train((np.stack([ds.load(i)[..., 0] for i in range(len(ds))]) * 255).astype(np.uint8), ds.labels, epochs=2)
    rec.save(tmp_path / "rec.npz")
    np.save(tmp_path / "emb.npy", np.ones((n, 4)) + np.arange(n)[:, None])
    out = tmp_path / "run"
    assert main(["scan", str(root / "m.csv"), "--recording", str(tmp_path / "rec.npz"), "--features",
                 str(tmp_path / "emb.npy"), "--on-bad-image", "skip", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "--features left out" in err and "bad.png" in err
    assert main(["review", str(out), "--export", str(tmp_path / "clean.csv")]) == 0
    said = capsys.readouterr().out
    assert "leaving out the 1 unreadable files the scan skipped, which take no id (bad.png)" in said
    assert "--on-bad-image skip" in said and "--features" not in said.split("then: ")[1]


def _named(argv: list[str]) -> set[str]:
    """The training settings ``labeltrace scan`` refuses beside --recording for this command line."""
    from labeltrace.cli import named_options
    from labeltrace.cli_own import TRAINING_FLAGS

    return set(named_options(argv)) & set(TRAINING_FLAGS)


def test_cli_data_flags_beside_recording_are_not_taken_for_training_flags() -> None:
    """Every other option of scan, by its full name, names no training setting: a full name is
    itself even where it begins another option's name (--features and --features-precision were)."""
    import argparse

    from labeltrace.cli import build_parser
    from labeltrace.cli_own import TRAINING_FLAGS, _check_flags

    base = ["scan", "d.csv", "--out", "RUN", "--recording", "r.npz"]
    scan = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["scan"]
    others = [a for a in scan._actions if a.option_strings and a.dest not in {*TRAINING_FLAGS, "help", "recording"}]
    assert len(others) > 10
    for a in others:
        value = [] if a.nargs == 0 else [str(a.choices[0]) if a.choices else "1"]
        for opt in a.option_strings:
            assert _named([*base, opt, *value]) == set(), opt
    assert _named([*base, "--no-m"]) == set()  # --no-missing-markers: no --no-model
    args = argparse.Namespace(**TRAINING_FLAGS, recording="r.npz", features=None, detector=None, named=frozenset())
    assert _check_flags(args) == "single"


def test_cli_training_flags_beside_recording_are_refused_by_argparse_reading(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    base = ["scan", "d.csv", "--out", "RUN", "--recording", "r.npz"]
    assert _named([*base, "--see", "0"]) == {"seed"}  # an abbreviation, at the default value too
    assert _named([*base, "--no-aug"]) == {"augment"}
    assert _named([*base, "--backbone-p", "float32", "--epochs=3"]) == {"backbone_precision", "epochs"}
    assert main([*base, "--see", "0", "--precision", "auto"]) == 2
    err = capsys.readouterr().err
    assert "--seed, --precision set a training labeltrace would run" in err
    import sys  # the command line itself (main() without argv: `labeltrace scan ...`)

    monkeypatch.setattr(sys, "argv", ["labeltrace", *base, "--no-aug"])
    assert main() == 2
    assert "--augment set a training labeltrace would run" in capsys.readouterr().err


def test_the_training_flags_scan_recording_refuses_are_the_scan_parsers_at_their_defaults() -> None:
    """`scan --recording` tells a training flag given from one left alone by its value: a scan
    default changed in the parser alone would refuse every recording."""
    from labeltrace.cli import build_parser
    from labeltrace.cli_own import TRAINING_FLAGS

    args = build_parser().parse_args(["scan", "DATA", "--out", "RUN", "--recording", "r.npz"])
    assert {k: getattr(args, k) for k in TRAINING_FLAGS} == TRAINING_FLAGS
