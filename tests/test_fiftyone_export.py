"""The FiftyOne export as a review found it against FiftyOne 1.22.1: DICOM / 16-bit files linked as
they are (a crash, or images its App cannot show), a half-built dataset left behind, names FiftyOne
refuses only after every sample was built, and no way to refresh a review without losing the
team's tags."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_fiftyone import fake_fiftyone
from PIL import Image
from runfactory import link_into_store, make_run

from labeltrace.export import export_run
from labeltrace.relabel.runstore import run_store
from labeltrace.rundir import open_run

Faked = tuple[dict[str, Any], Path]


@pytest.fixture
def faked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Faked:
    """The fake FiftyOne's datasets, and a 12-sample run to export."""
    return fake_fiftyone(monkeypatch), make_run(tmp_path, n=12, k=3, seed=1)


def test_a_file_a_browser_cannot_show_is_linked_as_a_png(faked: Faked) -> None:
    made, rd = faked
    run = open_run(rd)
    f = run.data_root / run.column("path")[4]
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 60).save(f)  # 12-bit values, 16-bit PNG
    export_run(rd, "fiftyone", "ds")
    by_id = {s["labeltrace_id"]: s for s in made["ds"].samples}
    png = Path(by_id[4]["filepath"])
    assert png == rd / "fiftyone_images" / "0000004.png"
    assert np.asarray(Image.open(png)).max() > 200  # stretched for display, not nearly black
    assert all(Path(s["filepath"]) == run.data_root / run.column("path")[i] for i, s in by_id.items() if i != 4)
    assert all(s["external_id"] == str(run.column("external_id")[i]) for i, s in by_id.items())
    assert made["ds"].default_classes == run.classes and made["ds"].persistent


def test_a_failed_export_leaves_no_dataset_and_the_old_one_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FiftyOne refused a sample half-way: 5 of 80 samples stayed in a persistent dataset the next
    export called 'an earlier export of this run', and --overwrite had deleted the old one first."""
    made = fake_fiftyone(monkeypatch, fail_on=6)
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    with pytest.raises(ValueError, match=r"FiftyOne failed \(TypeError: Sample media type.*no dataset was written"):
        export_run(rd, "fiftyone", "ds")
    assert made == {}
    old = sys.modules["fiftyone"].Dataset("ds")  # the user's own, replaced only by a complete export
    with pytest.raises(ValueError, match=r"\('ds' is as it was\)"):
        export_run(rd, "fiftyone", "ds", overwrite=True)
    assert list(made) == ["ds"] and made["ds"] is old


def test_a_name_fiftyone_would_refuse_is_refused_before_anything_is_built(faked: Faked) -> None:
    made, rd = faked
    export_run(rd, "fiftyone", "Round_1")
    with pytest.raises(ValueError, match=r"'round-1'.*URL-safe form 'round-1' is that of the existing dataset "
                                         r"'Round_1'.*--out"):  # fmt: skip
        export_run(rd, "fiftyone", "round-1", overwrite=True)
    with pytest.raises(ValueError, match=r"cannot name a dataset '第三轮' \('第三轮' has invalid slug-friendly name ''.*--out"):
        export_run(rd, "fiftyone", "第三轮")
    assert list(made) == ["Round_1"]


def test_update_refreshes_the_review_and_keeps_the_teams_work(faked: Faked, tmp_path: Path) -> None:
    made, rd = faked
    run = open_run(rd)
    export_run(rd, "fiftyone", "ds")
    ds = made["ds"]
    for s in ds.samples:
        s["tags"] = ["seen"]  # the team's work in FiftyOne
    export_run(rd, "fiftyone", "ds", update=True)  # nobody decided yet: no review field to type (FiftyOne refuses)
    assert not any("review_decision" in s for s in ds.samples)
    given = run.column("given_label_id").astype(int)
    fixed = run.classes[(given[3] + 1) % 3]
    run_store(run).add(3, fixed, reviewer="ada")
    assert export_run(rd, "fiftyone", "ds", update=True) == "ds"
    assert made["ds"] is ds and all(s["tags"] == ["seen"] for s in ds.samples)
    by_id = {s["labeltrace_id"]: s for s in ds.samples}
    assert by_id[3]["final"] == {"label": fixed} and by_id[3]["review_decision"] == fixed
    assert by_id[3]["review_status"] == "consensus"
    assert by_id[4].get("review_decision") is None and by_id[4]["final"] == {"label": run.classes[given[4]]}
    # the samples whose review changed alone, and final's label alone (its label tags and id kept)
    assert [(f, sorted(v)) for f, v in ds.set_calls] == [("review_decision", [3]), ("review_status", [3]),
                                                         ("final.label", [3])]
    ds.samples.append({"filepath": "x.png", "given": {"label": "added in FiftyOne"}})  # no labeltrace_id: not ours
    ds.set_calls.clear()
    export_run(rd, "fiftyone", "ds", update=True)
    assert ds.set_calls == []  # nothing changed since
    other = make_run(tmp_path / "b", n=12, k=3, seed=2)
    with pytest.raises(ValueError, match="the FiftyOne dataset 'ds' is not one; choose another name "
                                         "with --out, or replace it with --overwrite"):  # fmt: skip
        export_run(other, "fiftyone", "ds", update=True)
    with pytest.raises(ValueError, match="there is no FiftyOne dataset 'nope'"):
        export_run(rd, "fiftyone", "nope", update=True)
    ds.samples[0]["given"] = {"label": "someone else's"}  # rescanned since: other samples
    with pytest.raises(ValueError, match="does not hold this run's samples"):
        export_run(rd, "fiftyone", "ds", update=True)
    with pytest.raises(ValueError, match="--update refreshes an earlier FiftyOne export"):
        export_run(rd, "csv", update=True)


def test_a_left_out_sample_is_named_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'sample 231 (sample 231: its image file ... changed since the scan ...)'."""
    fake_fiftyone(monkeypatch)
    rd = make_run(tmp_path, n=12, k=3, seed=1)
    run = open_run(rd)
    (run.data_root / run.column("path")[5]).unlink()
    told: list[str] = []
    export_run(rd, "fiftyone", "ds", warn=told.append)
    assert len(told) == 1 and "sample 5 (" in told[0] and "sample 5 (sample 5" not in told[0]


def test_a_failed_rename_loses_neither_dataset(faked: Faked, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old dataset was deleted before the new one took its name; a failed rename then deleted the
    new one too, and the message said "'ds' is as it was"."""
    made, rd = faked
    export_run(rd, "fiftyone", "ds")
    old = made["ds"]
    old.samples[0]["tags"] = ["the team's"]
    Dataset = type(old)
    real = Dataset.name.fset

    def refuse(self, new: str) -> None:  # the database lost as the new dataset takes the name
        if new == "ds" and self is not old:
            raise ConnectionError("lost the database")
        real(self, new)

    monkeypatch.setattr(Dataset, "name", property(Dataset.name.fget, refuse))
    with pytest.raises(ValueError, match=r"ConnectionError: lost the database\); the export is complete as the "
                                         r"dataset 'labeltrace-building-[0-9a-f]+'; 'ds' is as it was"):  # fmt: skip
        export_run(rd, "fiftyone", "ds", overwrite=True)
    assert made["ds"] is old and old.samples[0]["tags"] == ["the team's"]
    built = [n for n in made if n.startswith("labeltrace-building-")]
    assert len(built) == 1 and made[built[0]].persistent and len(made[built[0]].samples) == 12


@pytest.mark.skipif(
    importlib.util.find_spec("fiftyone") is None, reason="fiftyone (optional extra) not installed"
)
def test_fiftyone_dataset(tmp_path: Path) -> None:  # pragma: no cover - needs the optional extra
    """Against a real FiftyOne: the export, an update that keeps the team's tags, an overwrite that
    leaves no dataset behind but the new one."""
    import uuid

    import fiftyone as fo

    from labeltrace.relabel.runstore import run_store

    rd = make_run(tmp_path, n=30, k=3, seed=2)
    # a name of its own: the developer's FiftyOne database may hold a dataset of any fixed one
    name = export_run(rd, "fiftyone", f"labeltrace-test-{uuid.uuid4().hex[:12]}")
    before = set(fo.list_datasets())
    ds = fo.load_dataset(name)
    try:
        run = open_run(rd)
        assert len(ds) == run.num_samples and ds.persistent
        s = ds.first()
        assert s["given"].label in run.classes and isinstance(s["is_suspect"], bool)
        assert s["external_id"] == str(run.column("external_id")[s["labeltrace_id"]])
        ds.take(3, seed=0).tag_samples("seen")
        export_run(rd, "fiftyone", name, update=True)  # nothing decided: no review field to type
        i = int(s["labeltrace_id"])
        fixed = run.classes[(int(run.column("given_label_id")[i]) + 1) % len(run.classes)]
        ds.select(s.id).tag_labels("checked", label_fields="final")
        run_store(run).add(i, fixed, reviewer="ada")
        export_run(rd, "fiftyone", name, update=True)
        ds.reload()
        s = ds[s.id]
        assert (s["review_decision"], s["final"].label, s["final"].tags) == (fixed, fixed, ["checked"])
        assert ds.count_sample_tags() == {"seen": 3}
        export_run(rd, "fiftyone", name, overwrite=True)
        assert set(fo.list_datasets()) == before and fo.load_dataset(name).count_sample_tags() == {}
    finally:
        fo.load_dataset(name).delete()


def test_links_into_a_store_of_files_without_a_suffix_are_linked_as_listed(faked: Faked, tmp_path: Path) -> None:
    """A link into DVC's cache was judged by the cached file (no suffix: written again as a PNG),
    then linked by it (a filepath FiftyOne's App cannot type)."""
    made, rd = faked
    link_into_store(rd, tmp_path / "cache", lambda k: f"{k:032x}")
    run = open_run(rd)
    export_run(rd, "fiftyone", "ds")
    assert sorted(s["filepath"] for s in made["ds"].samples) == sorted(str(run.data_root / p)
                                                                        for p in run.column("path"))
    assert not (rd / "fiftyone_images").exists()


def test_update_gives_a_cleared_final_a_label_and_refuses_a_dataset_without_given(faked: Faked) -> None:
    made, rd = faked
    run = open_run(rd)
    export_run(rd, "fiftyone", "ds")
    ds = made["ds"]
    ds.samples[0]["final"] = None  # the team cleared it
    export_run(rd, "fiftyone", "ds", update=True)
    i = ds.samples[0]["labeltrace_id"]
    assert ds.samples[0]["final"] == {"label": run.classes[int(run.column("given_label_id")[i])]}
    for s in ds.samples:
        del s["given"]
    with pytest.raises(ValueError, match="'ds' has no given field .*--overwrite"):
        export_run(rd, "fiftyone", "ds", update=True)


def test_a_replaced_dataset_that_cannot_be_deleted_is_named_not_fatal(
    faked: Faked, monkeypatch: pytest.MonkeyPatch
) -> None:
    made, rd = faked
    export_run(rd, "fiftyone", "ds")
    old = made["ds"]

    def refuse() -> None:
        raise ConnectionError("lost the database")

    monkeypatch.setattr(old, "delete", refuse)
    told: list[str] = []
    assert export_run(rd, "fiftyone", "ds", overwrite=True, warn=told.append) == "ds" and made["ds"] is not old
    assert len(told) == 1 and f"failed to delete the dataset it replaces (ConnectionError: lost the database), left as {old.name!r}" in told[0]


def test_an_excluded_sample_is_tagged_without_a_final_label_and_update_follows_the_review(faked: Faked) -> None:
    """final's label was run.classes[-1] (the last class) for a sample the review excluded."""
    made, rd = faked
    run = open_run(rd)
    given = run.column("given_label_id").astype(int)
    st = run_store(run)
    st.add(2, "exclude", kind="exclude", reviewer="ada")
    export_run(rd, "fiftyone", "ds")
    ds = made["ds"]
    by_id = {s["labeltrace_id"]: s for s in ds.samples}
    assert by_id[2]["tags"] == ["excluded"] and "final" not in by_id[2]
    assert by_id[2]["review_decision"] == "exclude" and by_id[2]["review_status"] == "excluded"
    assert all(by_id[i]["final"] == {"label": run.classes[given[i]]} for i in by_id if i != 2)
    for s in ds.samples:
        s["tags"] = [*s.get("tags", []), "seen"]  # the team's work in FiftyOne
    st.add(5, "exclude", kind="exclude", reviewer="ada")  # newly excluded
    st.add(2, run.classes[given[2]], reviewer="ada")  # no longer: the given label confirmed
    export_run(rd, "fiftyone", "ds", update=True)
    assert by_id[5]["tags"] == ["seen", "excluded"] and by_id[5]["final"] is None
    assert by_id[2]["tags"] == ["seen"] and by_id[2]["final"] == {"label": run.classes[given[2]]}
    assert all(by_id[i]["tags"] == ["seen"] for i in by_id if i not in (2, 5))
    ds.set_calls.clear()
    export_run(rd, "fiftyone", "ds", update=True)
    assert ds.set_calls == []  # nothing changed since
