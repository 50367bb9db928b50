"""Review app for the expert: a queue of suspects, one decision per click, saved at once.

``create_app`` / ``serve`` need the ``review`` extra (FastAPI, uvicorn) and are imported on
first use, so the store, the review order and :func:`export_labels` work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labeltrace.review.labels import export_labels
from labeltrace.review.order import review_order
from labeltrace.review.store import Decision, ReviewStore

if TYPE_CHECKING:
    from labeltrace.review.app import create_app, serve

__all__ = ["Decision", "ReviewStore", "create_app", "export_labels", "review_order", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        from labeltrace.review import app

        return getattr(app, name)
    raise AttributeError(f"module 'labeltrace.review' has no attribute {name!r}")
