"""What the report's summary and cards say about a run, and what the terminal summary prints: the
noise-rate estimate's lower-bound note, injected label noise, which file a suspect is, and class
names that hold control characters."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from runfactory import make_run

from labeltrace.report import write_report
from labeltrace.report.summary import summary_text
from labeltrace.rundir import RUN_JSON, open_run, write_json

BASE = {"train": {"epochs": 8}, "model": "small-cnn"}


def _patch(rd: Path, **changes: object) -> None:
    meta = json.loads((rd / RUN_JSON).read_text())
    write_json(rd / RUN_JSON, meta | changes)


def _card(page: str, key: str) -> str:
    return re.search(rf'<div class="k">{key}</div><div class="v">[^<]*</div><div class="s">([^<]*)</div>', page).group(1)


def test_the_noise_rate_card_says_an_in_sample_estimate_is_a_lower_bound(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)  # in-sample runs
    card = _card(write_report(rd, top=3).read_text(encoding="utf-8"), "Noise-rate estimate")
    assert card.endswith("on the posterior of the model(s) that trained on these labels: a lower bound")
    cf = make_run(tmp_path / "cf", n=30, k=3, crossfit=True)
    assert "lower bound" not in _card(write_report(cf, top=3).read_text(encoding="utf-8"), "Noise-rate estimate")


def test_injected_noise_is_named_and_the_given_labels_called_corrupted(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3)
    page = write_report(rd, top=3).read_text(encoding="utf-8")
    assert 'id="injected"' not in page  # true labels known some other way: nothing injected
    meta = open_run(rd).meta
    _patch(rd, config={**meta["config"], "noise": "symmetric:0.2"},
           noise={"spec": "symmetric:0.2", "realised_rate": 0.2, "n_flipped": 6})  # fmt: skip
    page = write_report(rd, top=3).read_text(encoding="utf-8")
    box = re.search(r'<div class="quality warn" id="injected">(.*?)</div>', page).group(1)
    assert box.startswith("Label noise injected on purpose (--noise symmetric:0.2: 6 of 30 labels changed, 20.0%)")
    assert "the given labels in this report are the corrupted ones" in box
    assert "(injected: symmetric:0.2)" in _card(page, "Noise-rate estimate")


def test_a_suspect_card_names_its_file(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3, kind="manifest", classes=["a", "b", "<c>"])
    run = open_run(rd)
    page = write_report(rd, top=30).read_text(encoding="utf-8")
    files = re.findall(r'<div class="lab meta file" title="([^"]*)">([^<]*)</div>', page)
    assert len(files) == 30
    paths = [str(p) for p in run.column("path")]
    assert {html.unescape(t) for t, _ in files} == set(paths)
    # a name with markup in it is escaped
    folder = make_run(tmp_path / "f", n=30, k=3, classes=["a", "b", "<c>"])
    page = write_report(folder, top=30).read_text(encoding="utf-8")
    assert "&lt;c&gt;/" in "".join(re.findall(r'class="lab meta file"[^>]*>([^<]*)', page))
    assert "<c>/" not in page


def test_terminal_summary_escapes_control_characters_in_names(tmp_path: Path) -> None:
    rd = make_run(tmp_path, n=30, k=3, classes=["naïve\nline", "tab\there", "ok"])
    _patch(rd, **BASE, detector={"name": "sei", "cutoff": 0.0, "rule": "gmm"})
    text = summary_text(rd, top=30)
    rows = text.splitlines()[text.splitlines().index(next(s for s in text.splitlines() if s.startswith("top "))) + 2:-1]
    assert len(rows) == 30 and all("->" in r for r in rows)  # one line per suspect
    assert "naïve\\nline" in text and "tab\\there" in text


def _flag(rd: Path, given: list[int], suggested: list[int], flagged: list[bool]) -> None:
    """Rewrite the run's given / suggested labels and flags (a rare class's scan, in small)."""
    import pyarrow as pa

    from labeltrace.rundir import SAMPLES, write_table

    run = open_run(rd)
    t = run.samples
    names = run.classes
    cols = {"given_label": [names[i] for i in given], "given_label_id": pa.array(given, pa.int64()),
            "suggested_label": [names[i] for i in suggested], "suggested_label_id": pa.array(suggested, pa.int64()),
            "is_suspect": flagged}  # fmt: skip
    for name, values in cols.items():
        t = t.set_column(t.schema.get_field_index(name), name, pa.array(values, t.schema.field(name).type))
    write_table(rd / SAMPLES, t)
    _patch(rd, counts={**run.meta["counts"], "flagged": sum(flagged)})


def test_terminal_summary_says_which_classes_the_flagged_samples_are(tmp_path: Path) -> None:
    # 30 samples, 'c' the rare class (3 labels): all 3 flagged as really 'a', and 2 'a' labels flagged
    # although the model agrees with them; nothing of 'b' — a user reads that off one line, not the top 10
    rd = make_run(tmp_path, n=30, k=3, classes=["a", "b", "c"], crossfit=True)
    _patch(rd, **BASE)
    given = [0] * 17 + [1] * 10 + [2] * 3
    suggested = [0] * 17 + [1] * 10 + [0] * 3
    flagged = [True, True] + [False] * 25 + [True] * 3
    _flag(rd, given, suggested, flagged)
    line = next(s for s in summary_text(rd, top=3).splitlines() if s.startswith("flagged per given class"))
    assert line == ("flagged per given class: 'c' 3 of 3 (100.0%: 3 suggested 'a'); 'a' 2 of 17 (11.8%: the model "
                    "agrees with all 2); none flagged in 'b' (10 samples)")
    _flag(rd, given, suggested, [False] * 30)  # nothing flagged: no such line
    assert "flagged per given class" not in summary_text(rd, top=3)


def test_counts_of_one_are_singular_and_a_scan_without_folds_says_nothing_of_folds(tmp_path: Path) -> None:
    """A one-epoch scan said "1 epochs x 2 runs" (the terminal) and "1 epochs × 2 runs" (the
    report's card), one copy "1 images are a copy of another", and the near-copies of an in-sample
    scan, which has no folds, were "not kept in one fold"."""
    from labeltrace.report.summary import duplicates_text, near_duplicates_text

    rd = make_run(tmp_path, n=30, k=3, epochs=1)
    _patch(rd, **BASE | {"train": {"epochs": 1}})
    assert ", 1 epoch x 2 runs" in summary_text(rd, top=3)
    assert _card(write_report(rd, top=3).read_text(encoding="utf-8"), "Model").startswith("1 epoch ×")
    dup = {"copies": 1, "groups": 1, "images_in_groups": 2, "conflicting_groups": 0}
    assert "exact copies: 1 image is a copy of another (1 group of" in duplicates_text({"duplicates": dup})
    near = {"groups": 1, "images_in_groups": 2, "conflicting_groups": 0, "threshold": 0.98}
    in_sample = near_duplicates_text({"near_duplicates": near, "protocol": {"kind": "in-sample"}})
    assert "1 group of likely copies" in in_sample and "fold" not in in_sample
    assert "or more; not kept in one fold)" in near_duplicates_text({"near_duplicates": near,
                                                                       "protocol": {"kind": "crossfit"}})  # fmt: skip


def test_messages_count_one_in_the_singular() -> None:
    import numpy as np
    import pytest

    from labeltrace._checks import counted
    from labeltrace.decide.auxiliary import combine_two_runs

    assert (counted(1, "epoch"), counted(1797, "image"), counted(0, "class", "classes")) == (
        "1 epoch", "1,797 images", "0 classes")
    with pytest.raises(ValueError, match=r"^1 sample is auxiliary in both runs \(no score with the given label\): "
                                         r"sample ids \[0\]"):  # fmt: skip
        combine_two_runs(np.zeros(3), np.zeros(3), np.array([True, False, False]), np.array([True, False, False]))
