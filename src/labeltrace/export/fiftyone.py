"""A persistent FiftyOne dataset of a run (optional extra), and the review's fields of one
refreshed in place."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np

from labeltrace._io import atomic_write_bytes
from labeltrace._warn import warn_caller
from labeltrace.export.labelstudio import report_problems
from labeltrace.relabel.order import every_sample_in_review_order
from labeltrace.relabel.verdicts import run_verdicts
from labeltrace.report.images import browser_shows, load_rgb, png_bytes
from labeltrace.rundir import FIFTYONE_IMAGES, Run

__all__ = ["to_fiftyone"]

#: the fields a review changes: what ``update=True`` refreshes (and the :data:`EXCLUDED_TAG`)
REVIEW_FIELDS = ("review_decision", "review_status", "final")
#: the sample tag of a sample the review excluded as of no class (its ``final`` is None: no label)
EXCLUDED_TAG = "excluded"


def _fiftyone() -> Any:
    try:
        import fiftyone as fo
    except ImportError as exc:
        from labeltrace.data.errors import MissingDependencyError

        raise MissingDependencyError(
            "export --to fiftyone needs FiftyOne, an optional extra: "
            "pip install 'labeltrace[fiftyone]' (or pip install fiftyone)"
        ) from exc
    return fo


@contextmanager
def _said(what: str) -> Iterator[None]:
    """A failure of FiftyOne's (its database not starting or lost, a sample or a name it refuses)
    as one ``ValueError`` that says what it left as it was; wraps FiftyOne's calls alone."""
    try:
        yield
    except Exception as exc:
        raise ValueError(f"FiftyOne failed ({type(exc).__name__}: {exc}); {what}") from exc


def _check_name(fo: Any, name: str) -> None:
    """Refuse, before any image is written, a name FiftyOne would refuse after every sample was
    built: one whose slug (lower case, punctuation and non-ASCII letters dropped) is invalid or
    another dataset's — FiftyOne keeps slugs unique, ``overwrite`` or not."""
    try:
        from fiftyone.core.utils import to_slug
    except ImportError:  # an older FiftyOne without slugs
        return
    try:
        slug = to_slug(name)
    except ValueError as exc:  # empty, or over FiftyOne's length
        raise ValueError(f"FiftyOne cannot name a dataset {name!r} ({exc}: a name's URL-safe form keeps its ASCII "
                         "letters, digits and separators, 1 to 1,551 of them); choose a name with --out (name= in "
                         "Python)") from None
    with _said("nothing was exported"):
        same = [n for n in fo.list_datasets() if n != name and to_slug(n) == slug]
    if same:
        raise ValueError(f"FiftyOne cannot name a dataset {name!r}: its URL-safe form {slug!r} is that of the "
                         f"existing dataset {same[0]!r} (FiftyOne keeps them unique, --overwrite or not); choose "
                         "another name with --out (name= in Python)")  # fmt: skip


def to_fiftyone(run: Run, name: str | None, *, warn: Callable[[str], None] | None = None,
                overwrite: bool = False, update: bool = False) -> str:  # fmt: skip
    """A persistent FiftyOne dataset of ``run``; samples whose image cannot be exported are left
    out and named in one ``warn`` message (see :func:`labeltrace.export.export_run`). Each sample
    holds the model's view (``given``, ``suggested``, ``score``, ``rank``, ``is_suspect``, ``sei``),
    its ``external_id``, the review so far (``review_decision`` / ``review_status`` of a decided
    sample, as in the cleaned labels) and ``final``, its label after the review — none for a sample
    the review excluded as of no class, tagged :data:`EXCLUDED_TAG` instead. A file a browser
    does not show as it is (DICOM, TIFF, a 16-bit PNG) is written as a PNG under the run's
    ``fiftyone_images`` and linked there, as an in-memory run's images are.

    An existing dataset of that name — an earlier export of this run included: the tags and edits
    made in FiftyOne would be lost — is replaced only with ``overwrite`` (``ValueError``
    otherwise, checked before any image is written); ``update`` instead refreshes the review's
    fields (``review_decision``, ``review_status``, ``final``'s label, the :data:`EXCLUDED_TAG`) of an
    earlier export of this run in place, on the samples whose review changed, keeping the team's sample tags, saved views and
    evaluations (an evaluation of ``final`` describes the labels it was run on). A new dataset is
    built under a temporary name and takes its own only when complete: a failure leaves no
    half-built dataset, and a dataset it was to replace as it was."""
    fo = _fiftyone()
    name = name or f"labeltrace-{run.path.resolve().name}"
    owner = str(run.path.resolve())  # recorded in the dataset's info, for the messages below
    with _said("nothing was exported"):
        exists = fo.dataset_exists(name)
        mine = exists and (getattr(fo.load_dataset(name), "info", None) or {}).get("labeltrace_run") == owner
    if update:
        return _update(fo, run, name, exists=exists, mine=mine)
    if exists and not overwrite:
        raise ValueError(f"a FiftyOne dataset named {name!r} already exists ("
                         + ("an earlier export of this run); pass --update (update=True) to refresh its review "
                            "fields, its tags, views and evaluations kept, " if mine else "not an export of this "
                            "run); pass ")
                         + "--overwrite (overwrite=True) to replace it — the tags, labels and views added to it in "
                         "FiftyOne are lost — or choose another name with --out")  # fmt: skip
    _check_name(fo, name)
    samples, problems = _samples(fo, run)
    report_problems(problems, len(samples) + len(problems), warn, left_out=True)
    ds = None
    try:
        with _said(f"no dataset was written ({name!r} is as it was)"):
            ds = fo.Dataset(f"labeltrace-building-{uuid.uuid4().hex[:12]}")
            ds.info["labeltrace_run"] = owner
            ds.default_classes = list(run.classes)
            ds.save()
            ds.add_samples(samples)
            ds.persistent = True
    except BaseException:
        if ds is not None:
            with suppress(Exception):  # the failure's own message says more
                ds.delete()
        raise
    _take_name(fo, ds, name, exists, warn or warn_caller)
    return name


def _take_name(fo: Any, ds: Any, name: str, exists: bool, say: Callable[[str], None]) -> None:
    """Give the complete dataset ``ds`` its ``name``; the one of that name, when it ``exists``, is
    set aside first and deleted last, so a failure on the way loses neither (the message, or
    ``say`` when the export itself is done, names where each is)."""
    built, old = ds.name, None
    with _said(f"the export is complete as the dataset {built!r}; {name!r} is as it was"):
        if exists:
            old = fo.load_dataset(name)
            old.name = f"labeltrace-replaced-{uuid.uuid4().hex[:12]}"
    try:
        ds.name = name
    except Exception as exc:
        where = f"{name!r} is as it was"
        if old is not None:
            try:
                old.name = name
            except Exception:  # the first failure is the one to report
                where = f"the dataset that was {name!r} is left as {old.name!r}"
        raise ValueError(f"FiftyOne failed ({type(exc).__name__}: {exc}); the export is complete as the dataset "
                         f"{built!r}; {where}") from exc  # fmt: skip
    if old is not None:
        try:
            old.delete()
        except Exception as exc:  # the export is done: a word, not a failure
            say(f"the export is {name!r}; FiftyOne failed to delete the dataset it replaces ({type(exc).__name__}: "
                f"{exc}), left as {old.name!r}: delete it in FiftyOne")  # fmt: skip


def _review_values(run: Run) -> tuple[list[str | None], list[str | None], list[str | None]]:
    """Per sample: the review's decision and status (None while undecided) and the ``final`` label
    (None where the review excluded the sample as of no class)."""
    v = run_verdicts(run)  # the experts' review so far: the export carries it beside the model's view
    decision, status, classes = v.decision_text(run.classes), v.status_text(), run.classes
    undecided = [s == "" for s in status]
    return ([None if u else str(d) for d, u in zip(decision, undecided, strict=True)],
            [None if u else str(s) for s, u in zip(status, undecided, strict=True)],
            [None if k < 0 else classes[k] for k in v.final.tolist()])  # fmt: skip


def _samples(fo: Any, run: Run) -> tuple[list[Any], list[tuple[int, str]]]:
    """The run's FiftyOne samples in review order, and the ``(sample id, reason)`` of those left out."""
    classes = run.classes
    given = run.column("given_label_id").astype(np.int64)
    sugg = run.column("suggested_label_id").astype(np.int64)
    prob = run.column("suggested_prob").astype(np.float64)
    score = run.column("score").astype(np.float64)
    sei = run.column("sei").astype(np.float64) if "sei" in run.samples.column_names else None
    rank = run.column("rank").astype(np.int64)
    sus = run.column("is_suspect").astype(bool)
    ext = run.column("external_id")
    truth = run.column("true_label_id").astype(np.int64) if "true_label_id" in run.samples.column_names else None
    decision, status, final = _review_values(run)
    img_dir = run.path / FIFTYONE_IMAGES  # a new scan (--force) removes it: never another scan's images
    samples, problems = [], []
    for i in every_sample_in_review_order(run)[0].tolist():
        try:
            f = run.scanned_image_file(i)  # a file changed or gone since the scan is not linked
            listed = run.listed_image_path(i)
            if f is None or not browser_shows(f, listed):  # in memory; DICOM, TIFF, 16-bit: a PNG of it
                path = img_dir / f"{i:07d}.png"
                if not path.exists():
                    atomic_write_bytes(path, png_bytes(load_rgb(run, i)))
            else:
                path = listed or f  # a link as the dataset lists it: its suffix types it
        except (ValueError, OSError) as exc:  # one sample, not the export
            problems.append((i, str(exc)))
            continue
        s = fo.Sample(
            filepath=str(path),
            labeltrace_id=i,
            external_id=str(ext[i]),
            given=fo.Classification(label=classes[given[i]]),
            suggested=fo.Classification(label=classes[sugg[i]], confidence=float(prob[i])),
            score=float(score[i]),
            rank=int(rank[i]),
            is_suspect=bool(sus[i]),
        )
        if sei is not None:  # a run without SEI has none: its score is another detector's
            s["sei"] = float(sei[i])
        if truth is not None:
            s["ground_truth"] = fo.Classification(label=classes[truth[i]])
        if status[i] is not None:  # decided: the review's decision and status, as in the cleaned labels
            s["review_decision"], s["review_status"] = decision[i], status[i]
        if final[i] is not None:
            s["final"] = fo.Classification(label=final[i])
        else:  # excluded as of no class: no final label, a tag to filter it by
            s["tags"] = [EXCLUDED_TAG]
        samples.append(s)
    return samples, problems


def _update(fo: Any, run: Run, name: str, *, exists: bool, mine: bool) -> str:
    """Refresh the review's fields of ``name``, an earlier export of ``run``, in place: on the
    samples whose review changed, ``final``'s label alone (its label tags and id kept)."""
    if not exists:
        raise ValueError(f"--update refreshes an earlier export of this run, and there is no FiftyOne dataset "
                         f"{name!r}; export without --update first")  # fmt: skip
    if not mine:
        raise ValueError(f"--update refreshes an earlier export of this run, and the FiftyOne dataset {name!r} is "
                         "not one; choose another name with --out, or replace it with --overwrite (its tags, "
                         "labels and views are lost)")  # fmt: skip
    fields = ("labeltrace_id", "given.label", *REVIEW_FIELDS[:2], "final.label", "tags")
    with _said(f"{name!r} is as it was"):
        ds = fo.load_dataset(name)
        schema = ds.get_field_schema()
        held = {f: (ds.values(f) if f.split(".")[0] in schema else None) for f in fields}
    if held["labeltrace_id"] is None or held["given.label"] is None:
        raise ValueError(f"the FiftyOne dataset {name!r} has no {'labeltrace_id' if held['labeltrace_id'] is None else 'given'}"
                         " field (removed in FiftyOne?): --update matches its samples to the run's by it; export "
                         "again with --overwrite (its tags, labels and views are lost) or under another name with --out")
    ids, given = held["labeltrace_id"], held["given.label"]
    ours = [k for k, i in enumerate(ids) if i is not None]  # samples the team added in FiftyOne have none
    classes = run.classes
    run_given = [classes[k] for k in run.column("given_label_id").astype(np.int64)]
    wrong = [int(ids[k]) for k in ours if not 0 <= int(ids[k]) < run.num_samples or run_given[int(ids[k])] != given[k]]
    if wrong:
        raise ValueError(f"the FiftyOne dataset {name!r} does not hold this run's samples as exported ({len(wrong)} "
                         f"differ, sample {wrong[0]} among them: the run scanned again since, or their given label "
                         "edited in FiftyOne?); export it again with --overwrite (its tags, labels and views are "
                         "lost) or under another name with --out")  # fmt: skip
    decision, status, final = _review_values(run)
    new: dict[str, list[str | None]] = {"review_decision": decision, "review_status": status, "final.label": final}
    tags = _tags(ids, ours, held["tags"], final)
    with _said(f"{name!r} may hold some of the new values: run the update again"):
        for field, per_sample in new.items():
            was = held[field] or [None] * len(ids)
            changed = {int(ids[k]): per_sample[int(ids[k])] for k in ours if was[k] != per_sample[int(ids[k])]}
            if field == "final.label":  # a final the team cleared (or an excluded one's) has no label to set
                made = {int(ids[k]) for k in ours if was[k] is None and int(ids[k]) in changed}
                if made:  # a new classification
                    ds.set_values("final", {i: fo.Classification(label=changed.pop(i)) for i in made},
                                  key_field="labeltrace_id")  # fmt: skip
                gone = {i for i, lab in changed.items() if lab is None}
                if gone:  # newly excluded: no final label at all
                    ds.set_values("final", {i: None for i in gone}, key_field="labeltrace_id")
                    changed = {i: lab for i, lab in changed.items() if i not in gone}
            if changed and (field.split(".")[0] in schema or any(v is not None for v in changed.values())):
                ds.set_values(field, changed, key_field="labeltrace_id")  # FiftyOne types a new field by a value
        if tags:
            ds.set_values("tags", tags, key_field="labeltrace_id")
    return str(ds.name)


def _tags(ids: list[Any], ours: list[int], held: list[Any] | None, final: list[str | None]) -> dict[int, list[str]]:
    """The sample tags to set on an update: :data:`EXCLUDED_TAG` added where the review now excludes
    the sample, taken off where it no longer does; the team's own tags kept."""
    out: dict[int, list[str]] = {}
    for k in ours:
        i, had = int(ids[k]), list((held[k] if held is not None else None) or [])
        if (EXCLUDED_TAG in had) != (final[i] is None):
            out[i] = [t for t in had if t != EXCLUDED_TAG] + ([EXCLUDED_TAG] if final[i] is None else [])
    return out
