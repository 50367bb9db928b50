"""What the ``--model auto`` probe reads under injected noise (documented in the README): the noisy
labels for symmetric / pair noise, the labels before confusion / instance noise (said in its note)."""

from __future__ import annotations

import numpy as np
import pytest

from labeltrace.data import from_arrays
from labeltrace.models import probe as probe_mod
from labeltrace.scan import ScanConfig
from labeltrace.scan_settings import resolve_model


@pytest.mark.parametrize(("noise", "clean"), [("symmetric:0.3", False), ("confusion:0.3", True),
                                              ("instance:0.3", True)])  # fmt: skip
def test_the_model_probe_reads_the_labels_before_feature_following_noise(noise: str, clean: bool,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    seen: list[np.ndarray] = []

    def choose(ds, **kw):  # type: ignore[no-untyped-def]
        seen.append(np.asarray(ds.labels))
        return probe_mod.Probe("small-cnn", {}, 0, "test")

    monkeypatch.setattr(probe_mod, "choose_model", choose)
    ds = from_arrays(np.zeros((60, 4, 4), np.uint8), np.arange(60) % 3)
    _, probe = resolve_model(ScanConfig(noise=noise, seed=0), ds)
    assert np.array_equal(seen[0], ds.labels) == clean
    kind = noise.split(":")[0]
    assert probe is not None and (f"labels before the {kind} noise" in probe["reason"]) == clean
