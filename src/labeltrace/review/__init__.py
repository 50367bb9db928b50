"""Review app for the expert: a queue of suspects, one decision per click, saved at once.

``create_app`` / ``serve`` need the ``review`` extra (FastAPI, uvicorn) and are imported on
first use. The decisions store and the review order live in :mod:`labeltrace.relabel`
(they work without the web extra); the cleaned label file in :mod:`labeltrace.export`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labeltrace.review.app import create_app
    from labeltrace.review.server import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from labeltrace.review.app import create_app

        return create_app
    if name == "serve":
        from labeltrace.review.server import serve

        return serve
    raise AttributeError(f"module 'labeltrace.review' has no attribute {name!r}")
