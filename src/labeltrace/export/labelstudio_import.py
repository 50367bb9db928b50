"""Label Studio results read back into the decisions store (``labeltrace export RUN_DIR
--from-labelstudio FILE``): each task's decision, from Label Studio's JSON or JSON-MIN export."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from labeltrace._checks import samples_named
from labeltrace._io import iter_json_items
from labeltrace._warn import warn_caller
from labeltrace.export.labelstudio_results import annotation_says, decision_of, iso, min_decision
from labeltrace.relabel.runstore import run_store
from labeltrace.relabel.verdicts import Verdicts, run_verdicts
from labeltrace.run_claim import sharing
from labeltrace.rundir import Run, open_run

__all__ = ["LS_REVIEWER", "import_labelstudio"]

LS_REVIEWER = "labelstudio"
#: the fields a JSON-MIN export gives an annotated task (null, or absent, for a task nobody annotated)
_MIN_ANNOTATION_KEYS = ("annotator", "annotation_id", "updated_at", "created_at", "lead_time")


def _tasks(export_json: str | os.PathLike[str]) -> Iterator[Any]:
    """The export's tasks one at a time: an export of hundreds of MB is never held whole."""
    try:
        with open(export_json, encoding="utf-8") as fh:
            head = fh.read(4096).lstrip()
        if head[:1] not in ("[", "{"):  # a list of tasks, or one task
            raise ValueError(f"{export_json}: expected a JSON list of tasks")
        yield from iter_json_items(export_json)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{export_json}: cannot read a Label Studio export: {exc}") from exc


def _external_ids(ext_ids: list[str]) -> dict[str, int]:
    """Each sample's external id → its id, and each NFC form no two ids share → that id, under the
    key ``"\0" + form``: a name that went through macOS (decomposed accents, NFD) still finds its
    sample, and one whose form several ids share finds none (that form → how many share it, under
    ``"\1" + form``, for the message)."""
    by_ext = {e: i for i, e in enumerate(ext_ids)}
    forms = Counter(unicodedata.normalize("NFC", e) for e in ext_ids)
    for i, e in enumerate(ext_ids):
        nfc = unicodedata.normalize("NFC", e)
        if forms[nfc] == 1:
            by_ext["\0" + nfc] = i
        else:
            by_ext["\1" + nfc] = forms[nfc]
    return by_ext


def _lookup(by_ext: dict[str, int], ext: Any) -> int | None:
    text = str(ext)
    return by_ext[text] if text in by_ext else by_ext.get("\0" + unicodedata.normalize("NFC", text))


def _labeltrace_id(value: Any) -> int | None:
    """A task's ``labeltrace_id`` as an int: ``397``, ``397.0``, ``"397"`` or a spreadsheet's
    ``"397.0"``; None for anything else (absent, a bool, other text)."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.0*)?\s*", value):
        value = int(value.split(".")[0])
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: how a task names its sample: ``labeltrace_id`` (the default: the run's sample id, checked against the
#: task's ``external_id``) or ``external_id`` (the image's name, for a task file of an earlier scan)
MATCH_BY = ("labeltrace_id", "external_id")
_RESCAN_HINT = ("if the file was exported from an earlier scan of these images, which this scan numbers otherwise "
                "(images added or removed), import it with --by external_id (Python: by='external_id')")


def _sample_of(run: Run, data: dict[str, Any], where: str, by_ext: dict[str, int], ext_ids: list[str],
               by: str = "labeltrace_id") -> tuple[int, bool]:  # fmt: skip
    """The run's sample a task names, and whether its ``labeltrace_id`` numbers another sample.

    ``by="labeltrace_id"``: the ``labeltrace_id`` (else, without one, the ``external_id``), which
    must agree with the task's ``external_id`` where it has one. ``by="external_id"``: the
    ``external_id`` alone — a task file exported from an earlier scan of the same images, which a
    rescan numbers otherwise; the second value says its ``labeltrace_id`` named another sample.
    ``ValueError`` naming the task when it names no sample, or two that disagree."""
    raw = data.get("labeltrace_id")
    sid = _labeltrace_id(raw)
    valid = sid is not None and 0 <= sid < run.num_samples
    ext = data.get("external_id")
    at = None if ext is None else _lookup(by_ext, ext)
    if ext is not None and at is None:
        twins = _ambiguous(by_ext, ext)
        named = (f"labeltrace_id {raw!r} is {ext_ids[sid]!r}" if valid  # type: ignore[index]
                 else f"labeltrace_id {raw!r}")  # fmt: skip
        raise ValueError(
            f"{where}: names external_id {str(ext)!r}, "
            + (f"which is {twins} of this run once its accents are normalised (NFC): rename one of them"
               if twins else f"which no sample of this run has ({named}): an image renamed or removed since the "
               "export, or a task file of other images?")  # fmt: skip
        )
    if by == "external_id":
        if at is None:
            raise ValueError(f"{where}: has no external_id, which --by external_id matches tasks by "
                             f"(labeltrace_id {raw!r})")  # fmt: skip
        return at, sid is not None and sid != at
    if raw is None and at is not None:  # no labeltrace_id: the external id names it
        return at, False
    if not valid:
        raise ValueError(f"{where}: no sample matches (labeltrace_id {raw!r}, external_id {ext!r})")
    if at is not None and at != sid:
        raise ValueError(
            f"{where}: labeltrace_id {sid} is this run's sample {ext_ids[sid]!r}, but the task names "  # type: ignore[index]
            f"external_id {str(ext)!r} (sample {at}): a task file of another scan? {_RESCAN_HINT}"
        )
    return sid, False  # type: ignore[return-value]


def _ambiguous(by_ext: dict[str, int], ext: Any) -> str:
    """``"the name of 2 samples"`` when ``ext``'s NFC form is shared by several of the run's ids (so it
    names none of them), else ``""``."""
    n = by_ext.get("\1" + unicodedata.normalize("NFC", str(ext)))
    return f"the name of {n} samples" if n else ""


def _when(entry: dict[str, Any]) -> str | None:
    """An annotation's (or a JSON-MIN entry's) time: ``updated_at``, else ``created_at``."""
    return iso(entry.get("updated_at") or entry.get("created_at"))


def _task_decision(anns: list[dict[str, Any]], classes: set[str],
                   where: str) -> tuple[tuple[str, str] | None, str | None, bool, bool]:  # fmt: skip
    """A full-JSON task's ``(decision or None, its time, whether its annotators disagree, whether
    the annotation counted is ground truth)``: the latest submitted annotation (then list order) —
    a ground-truth one first —; a cancelled (skipped) one only when nobody submitted one (a
    colleague's skip never erases a class another annotator chose)."""
    submitted = [a for a in anns if not a.get("was_cancelled")]
    said = {annotation_says(a, classes, where) for a in submitted} - {None}
    truth = [a for a in submitted if a.get("ground_truth")]
    last = max(enumerate(truth or submitted or anns), key=lambda ka: (_when(ka[1]) or "", ka[0]))[1]
    if last.get("was_cancelled"):
        return ("skip", "skip"), _when(last), len(said) > 1, False
    return decision_of(last.get("result") or [], classes, where), _when(last), len(said) > 1, bool(truth)


@sharing
def import_labelstudio(run_dir: str | os.PathLike[str], export_json: str | os.PathLike[str], *,
                       warn: Callable[[str], None] | None = None,
                       info: Callable[[str], None] | None = None, by: str = "labeltrace_id") -> int:  # fmt: skip
    """Read a Label Studio export (JSON or JSON-MIN) into ``reviews.db``; returns rows written.

    Each task is matched by ``data.labeltrace_id`` (else ``external_id``), which must agree with its
    ``external_id``. ``by="external_id"`` matches by the ``external_id`` alone: a task file exported
    from an earlier scan of the same images, which a rescan numbers otherwise (images added or
    removed), lands on the images it showed (``info`` names the samples whose task numbered
    another). The external id is the image's path under the root for folders and manifests, and a
    cleaned ``.npz``'s ``{split}_ids``; for in-memory arrays without ids it is the position, which
    names other images in another set. Of a task's
    annotations the latest submitted one (``updated_at`` / ``created_at``, then list order) counts —
    one marked ground truth before the others —: a class choice → relabel decision, ``review:
    unsure`` → ``unsure`` (with a class ticked too: ``unsure``), ``review: exclude`` → ``exclude``
    (the image is of no class; with a class ticked too: ``exclude``; with ``unsure`` too:
    ``unsure``, a doubt is no vote); a cancelled (skipped) annotation
    → ``skip``, only when no annotation of the task was submitted. A task whose counted annotation
    holds no choice is not imported, and ``warn`` names its sample; so are the tasks whose
    annotations disagree, those with a draft alone (never submitted: not imported), the samples
    whose stored decision stays another than the file's (a newer one imported before, a ground
    truth older than it), and the samples the import leaves disputed. A JSON-MIN export lists each
    annotation (the latest counts; the others are kept in the history, but for those older than a
    decision stored already) but leaves skipped ones and ground-truth marks out: ``warn`` says so. Rows are stored with
    reviewer and source ``"labelstudio"`` and the annotation's time; importing the same file twice
    writes nothing new. All tasks are checked before anything is written. ``info`` gets one line
    of what the import decided (labels changed, confirmed, unsure, skipped). An annotation deleted
    in Label Studio does not delete a decision imported before it.

    The latest annotation counts across imports too: an annotation older than (or as old as)
    the Label Studio decision already stored for its sample is not imported — importing last
    week's export after this week's never undoes this week's decisions — and ``warn`` (default
    :func:`warnings.warn`) is told how many were left out and for which samples.

    Raises
    ------
    ValueError
        Unreadable JSON, a task that matches no sample, or an unknown class in the annotation that
        counts (naming the task and its sample; in an annotation a later one replaced, it counts as
        a disagreement, JSON or JSON-MIN alike).
    """
    if by not in MATCH_BY:
        raise ValueError(f"by must be one of {', '.join(MATCH_BY)}, got {by!r}")
    run = open_run(run_dir)
    classes = set(run.classes)
    ext_ids = [str(e) for e in run.column("external_id")]
    by_ext = _external_ids(ext_ids)
    rows: list[dict[str, Any]] = []
    empty: list[int] = []  # samples whose counted annotation holds no choice
    several: list[int] = []  # samples whose annotations disagree: only the latest is imported
    drafts: list[int] = []  # samples with a draft and no submitted annotation
    truth: set[int] = set()  # samples whose counted annotation is ground truth
    minimal = 0  # JSON-MIN entries (skips are not in such a file)
    renumbered: list[int] = []  # samples whose task's labeltrace_id numbers another scan's sample
    latest_min: dict[int, tuple[str, int]] = {}  # a JSON-MIN sample's latest readable entry: (time, task index)
    unreadable: list[tuple[int, tuple[str, int], ValueError]] = []  # refused only when its sample's latest
    for t_idx, task in enumerate(_tasks(export_json)):
        tid = task.get("id", t_idx) if isinstance(task, dict) else t_idx
        if not isinstance(task, dict):
            raise ValueError(f"{export_json}: task {tid}: not a JSON object")
        full = "data" in task or "annotations" in task or "completions" in task
        data = task.get("data", {}) if full else task
        sid, numbered_otherwise = _sample_of(run, data, f"{export_json}: task {tid}", by_ext, ext_ids, by)
        if numbered_otherwise:
            renumbered.append(sid)
        where = f"{export_json}: task {tid} (sample {sid}, external_id {ext_ids[sid]!r})"
        if full:
            anns = [a for a in (task.get("annotations") or task.get("completions") or []) if isinstance(a, dict)]
            if not anns:
                if task.get("drafts"):
                    drafts.append(sid)
                continue
            dec, at, disagree, is_truth = _task_decision(anns, classes, where)
            if disagree:
                several.append(sid)
            if is_truth:
                truth.add(sid)
        else:
            minimal += 1
            at = _when(task)
            try:
                dec = min_decision(task, classes, where)
            except ValueError as exc:  # as in a JSON export, an annotation superseded by a readable one is passed
                unreadable.append((sid, (at or "", t_idx), exc))
                continue
            latest_min[sid] = max(latest_min.get(sid, ("", -1)), (at or "", t_idx))
        if dec is None:  # an empty submission (a JSON-MIN entry without annotation fields was never annotated)
            if full or any(task.get(key) is not None for key in _MIN_ANNOTATION_KEYS):
                empty.append(sid)
            continue
        rows.append({"sample_id": sid, "kind": dec[0], "decision": dec[1], "reviewer": LS_REVIEWER, "decided_at": at})
    for sid, when, refused in unreadable:
        if latest_min.get(sid, ("", -1)) < when:  # the sample's latest entry: nothing to import it from
            raise refused
        several.append(sid)  # an earlier annotation said something else (unreadable here)
    said_by: dict[int, set[tuple[str, str]]] = {}  # JSON-MIN lists one entry per annotation: they may disagree too
    for r in rows:
        said_by.setdefault(r["sample_id"], set()).add((r["kind"], r["decision"]))
    several += [i for i, said in said_by.items() if len(said) > 1]
    # each sample's rows oldest first, so that its latest annotation is its current decision whatever
    # the file's order (a JSON-MIN export lists one entry per annotation; rows without a time, and
    # the samples among themselves, keep the file's order)
    first: dict[int, int] = {}
    for k, r in enumerate(rows):
        first.setdefault(r["sample_id"], k)
    rows.sort(key=lambda r: (first[r["sample_id"]], r["decided_at"] or ""))
    say = warn or warn_caller
    _tell(say, export_json, empty=empty, several=several, drafts=drafts, minimal=minimal)
    store = run_store(run)
    was = run_verdicts(run)
    before = was.resolution.disputed.copy()
    said = {r["sample_id"]: (r["kind"], r["decision"]) for r in rows}  # the file's decision of each sample
    rows, named = _newer(store, rows, say, export_json, truth)
    if info is not None and (moved := sorted({r["sample_id"] for r in rows} & set(renumbered))):
        info(f"{export_json}: matched by external_id, {len(moved)} sample{'s' if len(moved) != 1 else ''} whose "
             f"task numbered another (the earlier scan's labeltrace_id): {samples_named(moved)}")  # fmt: skip
    n = store.add_many(rows, source=LS_REVIEWER)
    current = {i: (d.kind, d.decision) for i, d in store.current(reviewer=LS_REVIEWER).items() if i in said}
    kept = [i for i, dec in said.items() if current.get(i) != dec]  # a decision stored before stays current
    if marked := [i for i in kept if i in truth]:
        say(f"{export_json}: the ground-truth annotation of {samples_named(marked)} is older than the Label Studio "
            "decision imported before, which stays current (the import takes the newer of two decisions): "
            "decide those samples on the review page")  # fmt: skip
    if other := [i for i in kept if i not in truth and i not in named]:  # e.g. JSON after JSON-MIN
        say(f"{export_json}: the Label Studio decision stored for {samples_named(other)} is not this file's: a "
            "newer annotation imported before stays current (an export in the other format, or an older one?)")
    verdicts = run_verdicts(run)
    back = np.flatnonzero(was.changed & verdicts.resolution.resolved & ~verdicts.changed & ~verdicts.excluded)
    if back.size:
        say(f"{export_json}: the import takes back the relabels stored for {samples_named(back.tolist())}, which "
            "now keep their given labels (this file's annotations settle them so): if the annotators submitted "
            "tasks exported before those relabels, pre-ticked with the given label, export the tasks again — "
            "they open with the current label ticked — and import their annotations once more")  # fmt: skip
    disputed = np.flatnonzero(verdicts.resolution.disputed & ~before)
    if disputed.size:  # the import disagrees with the review page's decisions there
        say(f"{export_json}: the import leaves {samples_named(disputed.tolist())} disputed (Label Studio's label "
            "against the review's): "
            "they keep their given labels until another vote settles them (review page: Next disputed)")
    if info is not None:
        info(_summary(run, {i: said[i] for i in said if i not in kept}, len(kept), n, verdicts))
    return n


def _tell(say: Callable[[str], None], export_json: str | os.PathLike[str], *, empty: list[int], several: list[int],
          drafts: list[int], minimal: int) -> None:  # fmt: skip
    """The warnings of what an import leaves out or decides on one annotation of several."""
    if minimal:
        say(f"{export_json} is a JSON-MIN export, which leaves skipped (cancelled) annotations and ground-truth "
            "marks out: a task skipped in Label Studio imports as undecided (an annotator's earlier class "
            "stands), and the latest annotation counts even where another is ground truth; Label Studio's JSON "
            "export keeps both")  # fmt: skip
    if empty:
        say(f"{export_json}: {len(empty)} task{'s' if len(empty) != 1 else ''} not imported: the annotation "
            f"counted (the latest submitted, or the ground truth) of {samples_named(empty)} holds no class and no 'unsure' (an empty submission); earlier "
            "annotations of those tasks are not used either — annotate them again, or decide them on the "
            "review page")  # fmt: skip
    if drafts:
        say(f"{export_json}: {len(drafts)} task{'s' if len(drafts) != 1 else ''} not imported: {samples_named(drafts)} "
            f"hold{'s' if len(set(drafts)) == 1 else ''} only a draft (never submitted in Label Studio)")  # fmt: skip
    if several:
        say(f"{export_json}: the annotations of {samples_named(several)} disagree (several annotators, or one who "
            "changed their mind); only the latest annotation of each counts"
            + ("" if minimal else " (one marked ground truth first)") + ", "
            "as the one reviewer 'labelstudio' — to count several annotators' votes, decide those samples on "
            "the review page under each annotator's name")  # fmt: skip


def _newer(store: Any, rows: list[dict[str, Any]], say: Callable[[str], None], export_json: str | os.PathLike[str],
           truth: set[int]) -> tuple[list[dict[str, Any]], set[int]]:  # fmt: skip
    """``rows`` less those no newer than the Label Studio decision already stored for their sample,
    and the samples ``say`` was told of: those whose latest annotation in this file is so (an older
    export; the earlier annotations a JSON-MIN file lists beside its latest one are history, left
    out without a word; a ground truth among them, in ``truth``, is said of apart)."""
    stored = store.current(reviewer=LS_REVIEWER)
    stale = [r for r in rows if r["sample_id"] in stored and r["decided_at"] is not None
             and _not_newer(r, stored[r["sample_id"]])]  # fmt: skip
    if not stale:
        return rows, set()
    # an annotation stored already (the same file imported again: its older entries) is a repeat,
    # which add_many skips, not an older export's
    # (one read of the table: one per stale sample took 27 s for 30,000 of them)
    touched = {r["sample_id"] for r in stale}
    had = {(d.sample_id, d.kind, d.decision, iso(d.decided_at)) for d in store.history()
           if d.reviewer == LS_REVIEWER and d.sample_id in touched}  # fmt: skip
    stale = [r for r in stale if (r["sample_id"], r["kind"], r["decision"], iso(r["decided_at"])) not in had]
    last = {r["sample_id"]: id(r) for r in rows}  # each sample's latest row in this file
    older = [r for r in stale if last[r["sample_id"]] == id(r) and r["sample_id"] not in truth]  # truth: said apart
    if older:
        say(f"{export_json}: {len(older)} annotation{'s' if len(older) != 1 else ''} not imported: no newer than "
            f"the Label Studio decision already stored for {samples_named(r['sample_id'] for r in older)} (an "
            "older export?); the stored decisions stay current")  # fmt: skip
    left_out = {id(r) for r in stale}
    return [r for r in rows if id(r) not in left_out], {r["sample_id"] for r in older}


def _summary(run: Run, took: dict[int, tuple[str, str]], kept: int, n: int, v: Verdicts) -> str:
    """What an import decided: the samples whose decision is now the file's (``took``), by kind,
    and how many keep a decision stored before (``kept``); under a rule where one vote does not
    settle a sample (``v``, the verdicts after the import: ``review --agree 2``), what the file's
    votes settled — "3 labels changed" read as three changed labels where two were."""
    if not n:
        return f"imported nothing new into {run.path / 'reviews.db'} (reviewer '{LS_REVIEWER}')"
    given, classes = run.column("given_label_id"), run.classes
    labels = [i for i, (kind, _) in took.items() if kind == "label"]
    kinds = [kind for kind, _ in took.values()]
    if v.rule.one_vote_settles:  # what the labels are now: a vote against the review page's is disputed, not a change
        ids = np.asarray(labels, dtype=np.int64)
        settled = v.resolution.resolved[ids] & ~v.excluded[ids]
        changed, confirmed = int((settled & v.changed[ids]).sum()), int((settled & ~v.changed[ids]).sum())
        open_ = int((~v.resolution.resolved[ids]).sum())  # a label vote against another reviewer's
    else:  # each a vote of several: what the file says (the settled clause says what they settled)
        changed = sum(took[i][1] != classes[int(given[i])] for i in labels)
        confirmed, open_ = len(labels) - changed, 0
    return (f"imported {n} annotation{'s' if n != 1 else ''} into {run.path / 'reviews.db'} (reviewer "
            f"'{LS_REVIEWER}'): of the {len(took) + kept} sample{'s' if len(took) + kept != 1 else ''} this file "
            f"decides, {changed} label{'s' if changed != 1 else ''} changed, {confirmed} confirmed, "
            + (f"{open_} disputed (the review's decisions differ), " if open_ else "")
            + f"{kinds.count('unsure')} unsure, {kinds.count('skip')} skipped"
            + (f", {kinds.count('exclude')} excluded as of no class" if 'exclude' in kinds else "")
            + (f", {kept} keep{'s' if kept == 1 else ''} a decision stored before" if kept else "")
            + _settled(v, [i for i, (kind, _) in took.items() if kind in ("label", "exclude")]))


def _settled(v: Verdicts, voted: list[int]) -> str:
    """The summary's clause on the samples the file voted on (``voted``) when one vote does not
    settle a sample: how many are settled now, and how many wait for more votes ("" otherwise)."""
    if v.rule.one_vote_settles or not voted:
        return ""
    ids = np.asarray(voted, dtype=np.int64)
    done = v.resolution.resolved[ids]
    changed, excluded, waiting = int(v.changed[ids].sum()), int(v.excluded[ids].sum()), int((~done).sum())
    settled = int(done.sum())
    one = waiting == 1
    return (f"; each is one reviewer's vote under the review's rule ({v.rule.describe()}): {settled} of the "
            f"{ids.size} sample{'s' if ids.size != 1 else ''} voted on {'is' if settled == 1 else 'are'} settled now "
            f"({changed} label{'s' if changed != 1 else ''} changed, {excluded} excluded), {waiting} "
            f"wait{'s' if one else ''} for more votes, keeping {'its' if one else 'their'} given "
            f"label{'' if one else 's'} meanwhile (review page: Next without consensus)")


def _not_newer(row: dict[str, Any], stored: Any) -> bool:
    """Whether an imported row is no newer than the stored decision (a repeat of the stored
    decision itself is not: :meth:`ReviewStore.add_many` skips it as a duplicate)."""
    at, was = iso(row["decided_at"]), iso(stored.decided_at)
    if at is None or was is None or at > was:
        return False
    return not (at == was and (row["kind"], row["decision"]) == (stored.kind, stored.decision))
