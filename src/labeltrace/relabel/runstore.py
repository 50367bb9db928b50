"""A run's review decisions: its :class:`~labeltrace.relabel.decisions.ReviewStore`
(``RUN_DIR/reviews.db``), bound to the run's classes, size and sample ids."""

from __future__ import annotations

import numpy as np

from labeltrace.relabel.decisions import ReviewStore
from labeltrace.rundir import REVIEWS_DB, Run

__all__ = ["current_decisions", "notices", "open_store", "run_store", "set_aside_text"]


def current_decisions(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """``(kind_code, label_id)`` per sample from ``reviews.db`` (all -1 when there is none).

    See :meth:`ReviewStore.current_arrays`.
    """
    store = open_store(run)
    if store is None:
        n = run.num_samples
        return np.full(n, -1, np.int8), np.full(n, -1, np.int64)
    return store.current_arrays()


def run_store(run: Run) -> ReviewStore:
    """The run's decision store (``RUN_DIR/reviews.db``, created if missing), bound to the run's
    classes, size and sample ids."""
    return ReviewStore(run.path / REVIEWS_DB, classes=run.classes, num_samples=run.num_samples,
                       sample_ids=run.column("external_id").tolist())  # fmt: skip


def open_store(run: Run) -> ReviewStore | None:
    """The run's decision store, or None when nobody has reviewed yet (nothing is created)."""
    if not (run.path / REVIEWS_DB).exists():
        return None
    return run_store(run)


def set_aside_text(run: Run) -> str | None:
    """A warning naming the decision files a scan with ``--force`` set aside in the run
    (``reviews.db.replaced-<time>``: they were about other samples or classes), or None: their
    decisions are in neither this review nor its exports."""
    aside = sorted(p.name for p in run.path.glob(f"{REVIEWS_DB}.replaced-*") if not p.name.endswith(("-wal", "-shm")))
    if not aside:
        return None
    return (f"{', '.join(aside)} in {run.path} hold{'s' if len(aside) == 1 else ''} the review decisions of an "
            "earlier scan, set aside by a scan with --force because that scan had other samples or classes (or "
            "wrote a decisions file that does not say which samples it is about): they are not part of this review "
            f"or its exports; if one is about these very images, rename it to {REVIEWS_DB} (with its -wal file)")


def notices(run: Run) -> list[str]:
    """What every command that reads a run says first: decision files a scan with ``--force`` set
    aside (:func:`set_aside_text`), an images folder or ``.npz`` that is not there
    (:func:`labeltrace.run_moved.missing_root_text`)."""
    from labeltrace.run_moved import missing_root_text

    return [text for text in (set_aside_text(run), missing_root_text(run)) if text is not None]
