"""Review app for the expert: a queue of suspects, one decision per click, saved at once.

``create_app`` / ``serve`` need the ``review`` extra (FastAPI, uvicorn) and are imported on
first use. The decisions store and the review order live in :mod:`labeltrace.relabel`
(they work without the web extra); the cleaned label file in :mod:`labeltrace.export`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labeltrace._lazy import exports

if TYPE_CHECKING:
    from labeltrace.review.app import create_app as create_app
    from labeltrace.review.server import serve as serve

__all__, __getattr__, __dir__ = exports(__name__, {"create_app": "app", "serve": "server"})
