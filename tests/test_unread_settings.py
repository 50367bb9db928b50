"""Settings the chosen model does not read (``--resolution`` with the small CNN, ``--image-size``
with frozen features, ...) were accepted, changed nothing but the run folder's fingerprint, and the
same scan without them was then refused as "another configuration". A named model now refuses
them; ``--model auto`` says its pick leaves them unused; a folder scanned with one resumes without."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from labeltrace import scan_settings
from labeltrace.cli import main
from labeltrace.data import from_arrays
from labeltrace.scan import ScanConfig, scan
from labeltrace.scan_settings import fingerprint
from labeltrace.scan_unread import held_unread, unread_settings
from labeltrace.train import protocol

torch.set_num_threads(1)


@pytest.mark.parametrize(("model", "flags", "named"), [
    ("small-cnn", ["--resolution", "128"], ["--resolution 128"]),
    ("small-cnn", ["--hidden", "64", "--head", "linear"], ["--head 'linear'", "--hidden 64"]),
    ("small-cnn", ["--clip-model", "some/dir"], ["--clip-model 'some/dir'"]),
    ("effnet-lite0", ["--image-size", "32", "--augment"], ["--image-size 32", "--augment"]),
    ("effnet-lite0", ["--width", "8"], ["--width 8"]),
    ("effnet-lite0", ["--head", "linear", "--hidden", "64"], ["--hidden 64"]),
    ("clip", ["--clip-model", "d", "--resolution", "224"], ["--resolution 224"]),
    ("small-cnn", ["--backbone-precision", "bfloat16", "--cache-dir", "c"],
     ["--backbone-precision 'bfloat16'", "--cache-dir 'c'"]),
    ("effnet-lite0", ["--finetune", "--backbone-precision", "float32", "--cache-dir", "c"],
     ["--backbone-precision 'float32'", "--cache-dir 'c'"]),
])  # fmt: skip
def test_a_named_model_refuses_a_setting_it_does_not_read(tmp_path: Path, capsys, model: str, flags: list[str],
                                                          named: list[str]) -> None:  # fmt: skip
    data = tmp_path / "missing.npz"  # refused before the data is read
    assert main(["scan", str(data), "--out", str(tmp_path / "R"), "--model", model, *flags, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--model {model} does not read" in err and "leave" in err
    for f in named:
        assert f in err
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize(("model", "config"), [
    ("small-cnn", ScanConfig(width=8, image_size=16, augment=True)),
    ("small-cnn", ScanConfig(resolution=224, noise="confusion:0.2")),  # the features the noise follows
    ("small-cnn", ScanConfig(resolution=224, noise="instance:0.2")),
    ("effnet-lite0", ScanConfig(resolution=224, head="mlp", hidden=64)),
    ("effnet-lite0", ScanConfig(finetune=True, image_size=64, augment=True, head="linear", resolution=128)),
    ("clip", ScanConfig(clip_model="d", clip_template="an x-ray of {}", aux_prompt="other", image_size=64)),
    ("effnet-lite0", ScanConfig(backbone_precision="bfloat16", cache_dir="c")),  # frozen features
    ("small-cnn", ScanConfig(cache_dir="c", noise="confusion:0.1")),  # the features the noise follows
    ("small-cnn", ScanConfig(model="auto", cache_dir="c")),  # auto's probe reads features
])  # fmt: skip
def test_settings_the_model_reads_are_not_called_unread(model: str, config: ScanConfig) -> None:
    assert unread_settings(config, model) == []


def test_unread_settings_are_named_in_field_order_and_defaults_are_not() -> None:
    c = ScanConfig(image_size=32, width=8, head="linear", hidden=64, resolution=96, augment=False)
    assert unread_settings(c, "effnet-lite0") == ["image_size", "width", "hidden"]
    assert unread_settings(c, "small-cnn") == ["head", "hidden", "resolution"]
    assert unread_settings(ScanConfig(), "clip") == []  # every one at its default


def _ds():
    d = load_digits()
    return from_arrays((d.images[:90] / 16).astype(np.float32), d.target[:90])


def _fp(ds, model: str, **kw) -> dict:
    kw.setdefault("resolution", 96)
    return fingerprint(ds, ScanConfig(model=model, **kw), model, None)


def test_the_unread_settings_a_fingerprint_holds_are_read_back_from_it() -> None:
    ds = _ds()
    linear = ScanConfig(model="effnet-lite0", head="linear", resolution=96)
    assert held_unread(_fp(ds, "small-cnn", resolution=224), ScanConfig(), "small-cnn") == {"resolution": 224}
    assert held_unread(_fp(ds, "effnet-lite0", image_size=32, augment=True), ScanConfig(), "effnet-lite0") == {
        "image_size": 32, "augment": True}
    assert held_unread(_fp(ds, "effnet-lite0", head="linear", hidden=64), linear, "effnet-lite0") == {
        "image_size": None, "augment": False, "hidden": 64}
    # what the model reads is not taken back: it keeps two scans apart
    assert held_unread(_fp(ds, "effnet-lite0", resolution=224), ScanConfig(), "effnet-lite0") == {
        "image_size": None, "augment": False}
    assert held_unread(_fp(ds, "small-cnn", resolution=224, noise="confusion:0.2"),
                       ScanConfig(noise="confusion:0.2"), "small-cnn") == {}  # the noise's features read it
    assert held_unread(_fp(ds, "small-cnn", resolution=224), ScanConfig(), "effnet-lite0") == {}  # another model


def _no_training(*a, **k):
    raise AssertionError("a finished recording was retrained")


@pytest.mark.parametrize(("model", "old", "now"), [
    ("small-cnn", {"resolution": 128}, {}),
    ("effnet-lite0", {"head": "linear", "hidden": 64, "resolution": 96}, {"head": "linear", "resolution": 96}),
    ("effnet-lite0", {"augment": True, "image_size": 32, "resolution": 96}, {"resolution": 96}),
])  # fmt: skip
def test_a_folder_scanned_with_an_unread_setting_resumes_without_it(tmp_path: Path, monkeypatch, backbone_spy,
                                                                    model: str, old: dict, now: dict) -> None:  # fmt: skip
    """As an earlier version scanned it (the setting accepted, and built into the network, the
    training and both fingerprints): the same scan without it is that scan, not retrained. The
    scan fingerprint alone taken back left the recording's (--hidden, --augment) refused."""
    ds, out = _ds(), tmp_path / "R"
    base = {"epochs": 1, "batch_size": 16, "detector": "sei", "runs": 1}
    with monkeypatch.context() as m:
        m.setattr(scan_settings, "unread_settings", lambda config, model: [])
        import labeltrace.scan as scan_module

        m.setattr(scan_module, "unread_settings", lambda config, model: [])
        first = scan(ds, out, ScanConfig(model=model, **old, **base), progress=False, log=lambda s: None)
    held = json.loads((out / "fingerprint.json").read_text())
    monkeypatch.setattr(protocol, "train_recorded", _no_training)
    logs: list[str] = []
    again = scan(ds, out, ScanConfig(model=model, **now, **base), progress=False, log=logs.append)
    said = [s for s in logs if "holds this scan made with" in s]
    assert len(said) == 1 and f"which {model} does not read: resumed with" in said[0]
    assert any("already holds this finished scan" in s for s in logs)
    np.testing.assert_array_equal(first.detection.score, again.detection.score)
    assert json.loads((out / "fingerprint.json").read_text()) == held  # its recording is filed under it


def test_the_rescan_command_leaves_out_settings_its_model_does_not_read(tmp_path: Path, monkeypatch) -> None:
    """A rescan names its model, which refuses unread settings: an auto scan's run.json keeps them."""
    from runfactory import rescan_on

    def edit(meta: dict) -> None:
        meta["model"] = "effnet-lite0"
        meta["config"].update(model="auto", image_size=32, width=8, head="linear", hidden=64, resolution=96)

    cmd, args = rescan_on(tmp_path, monkeypatch, native=False, edit=edit)
    assert "--model effnet-lite0" in cmd and "--head linear" in cmd and "--resolution 96" in cmd
    assert "--image-size" not in cmd and "--width" not in cmd and "--hidden" not in cmd
    assert (args.image_size, args.width, args.hidden, args.head) == (None, None, None, "linear")


def test_auto_says_its_pick_leaves_a_setting_unused(tmp_path: Path, monkeypatch) -> None:
    import labeltrace.scan as scan_module

    monkeypatch.setattr(scan_module, "resolve_model", lambda config, ds: ("small-cnn", None))  # the probe's pick
    logs: list[str] = []
    cfg = ScanConfig(model="auto", resolution=128, hidden=64, epochs=1, batch_size=16, detector="sei", runs=1)
    scan(_ds(), tmp_path / "R", cfg, progress=False, log=logs.append)
    said = [s for s in logs if s.startswith("--model auto: small-cnn does not read")]
    assert len(said) == 1 and "--hidden 64" in said[0] and "--resolution 128" in said[0] and "not used" in said[0]
    logs.clear()
    scan(_ds(), tmp_path / "R", ScanConfig(model="auto", epochs=1, batch_size=16, detector="sei", runs=1),
         progress=False, log=logs.append)  # fmt: skip
    assert any("already holds this finished scan" in s for s in logs)  # built without them: the same scan
    assert not any("does not read" in s for s in logs)


def test_auto_builds_nothing_from_a_setting_its_pick_does_not_read(tmp_path: Path, monkeypatch, backbone_spy) -> None:
    """Said "not used", --augment on frozen features still went into the training config, and the
    same scan without it was refused (the recording's fingerprint: 'differs in: train')."""
    import labeltrace.scan as scan_module

    monkeypatch.setattr(scan_module, "resolve_model", lambda config, ds: ("effnet-lite0", None))
    base = {"model": "auto", "resolution": 96, "epochs": 1, "batch_size": 16, "detector": "sei", "runs": 1}
    first = scan(_ds(), tmp_path / "R", ScanConfig(augment=True, head="linear", hidden=64, **base), progress=False,
                 log=lambda s: None)  # fmt: skip
    assert first.meta["config"]["augment"] in (None, False) and first.meta["config"]["hidden"] is None
    monkeypatch.setattr(protocol, "train_recorded", _no_training)
    logs: list[str] = []
    scan(_ds(), tmp_path / "R", ScanConfig(head="linear", **base), progress=False, log=logs.append)
    assert any("already holds this finished scan" in s for s in logs)
