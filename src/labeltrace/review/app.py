"""The review web app: FastAPI JSON API + one plain HTML/JS page (no build step).

Routes (all need the token when one is set: header ``X-Labeltrace-Token`` or ``?token=``):

==========================  =================================================================
``GET  /``                  the review page (HTML with its CSS and JS inlined)
``GET  /api/state``         classes, queue length, progress, resume position
``GET  /api/item/{pos}``    the queue item at position ``pos`` (0-based) with its decision
``GET  /api/image/{id}``    a sample's image as PNG (by sample id only, scaled for display)
``POST /api/decision``      ``{"sample_id", "decision", "kind"?, "reviewer"?}`` → committed row
``GET  /api/history/{id}``  every decision ever stored for a sample, oldest first
==========================  =================================================================

Without a token the app answers only requests whose ``Host`` is a loopback name, so a web page
on another origin cannot reach it through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from labeltrace.relabel.decisions import KINDS, ReviewStore
from labeltrace.relabel.order import review_order
from labeltrace.report.images import display_image, load_rgb, png_bytes
from labeltrace.rundir import REVIEWS_DB, Run, open_run

__all__ = ["TOKEN_HEADER", "create_app", "is_loopback", "serve"]

TOKEN_HEADER = "X-Labeltrace-Token"
IMAGE_SIZE = 512
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``)."""
    h = host.strip().strip("[]").lower()
    if h in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    h = host_header.strip()
    if h.startswith("["):  # [::1]:8765
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class DecisionIn(BaseModel):
    """Body of ``POST /api/decision``."""

    sample_id: int
    decision: str
    kind: str | None = None
    reviewer: str | None = None


class _Review:
    """The run, its review order and its decision store, shared by all requests."""

    def __init__(self, run: Run, reviewer: str | None) -> None:
        self.run = run
        self.order = review_order(run)
        self.position = np.full(run.num_samples, -1, dtype=np.int64)
        self.position[self.order] = np.arange(self.order.size)
        self.classes = run.classes
        self.given = run.column("given_label_id").astype(np.int64)
        self.suggested = run.column("suggested_label_id").astype(np.int64)
        self.suggested_prob = run.column("suggested_prob").astype(np.float64)
        self.score = run.column("score").astype(np.float64)
        self.rank = run.column("rank").astype(np.int64)
        self.store = ReviewStore(
            run.path / REVIEWS_DB, classes=self.classes, num_samples=run.num_samples
        )
        self.reviewer = reviewer

    def progress(self) -> dict[str, Any]:
        """Reviewed / changed counts over the queue and the first undecided position.

        A sample is *decided* when its current decision is a class or ``unsure``; ``skip``
        leaves it pending, so resuming returns to skipped items.
        """
        code, lab = self.store.current_arrays()
        c, l_ = code[self.order], lab[self.order]
        decided = (c == KINDS.index("label")) | (c == KINDS.index("unsure"))
        changed = (c == KINDS.index("label")) & (l_ != self.given[self.order])
        pending = np.flatnonzero(~decided)
        return {
            "total": int(self.order.size),
            "reviewed": int(decided.sum()),
            "changed": int(changed.sum()),
            "skipped": int((c == KINDS.index("skip")).sum()),
            "resume": int(pending[0]) if pending.size else int(self.order.size),
        }

    def item(self, pos: int) -> dict[str, Any]:
        i = int(self.order[pos])
        hist = self.store.history(i)
        cur = hist[-1].to_dict() if hist else None
        return {
            "position": pos,
            "total": int(self.order.size),
            "id": i,
            "external_id": str(self.run.samples.column("external_id")[i].as_py()),
            "given_label": self.classes[self.given[i]],
            "suggested_label": self.classes[self.suggested[i]],
            "suggested_prob": _finite(self.suggested_prob[i]),
            "score": _finite(self.score[i]),
            "rank": int(self.rank[i]),
            "decision": cur,
            "history": len(hist),
        }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _err(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


@lru_cache(maxsize=1)
def _page() -> str:
    static = resources.files("labeltrace.review") / "static"
    html = (static / "index.html").read_text(encoding="utf-8")
    css = (static / "review.css").read_text(encoding="utf-8")
    js = (static / "review.js").read_text(encoding="utf-8")
    return html.replace("/*__CSS__*/", css).replace("//__JS__", js)


def create_app(
    run_dir: str | os.PathLike[str], *, reviewer: str | None = None, token: str | None = None
) -> FastAPI:
    """The review app of a run directory.

    Parameters
    ----------
    run_dir : path
        Run directory written by ``labeltrace scan``; decisions go to ``RUN_DIR/reviews.db``.
    reviewer : str, optional
        Default reviewer name for decisions that do not carry one (the page asks for a name and
        also accepts ``?reviewer=``).
    token : str, optional
        When set, every request must carry it (header ``X-Labeltrace-Token`` or ``?token=``).
        When not set, only requests addressed to a loopback host name are answered.
    """
    run = open_run(run_dir)
    state = _Review(run, reviewer)
    app = FastAPI(title="labeltrace review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if token is not None:
            given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or ""
            if not secrets.compare_digest(given.encode(), token.encode()):
                return _err(401, f"missing or wrong token (send header {TOKEN_HEADER} or ?token=)")
        elif not is_loopback(_host_name(request.headers.get("host", ""))):
            return _err(
                403,
                "this server answers only on localhost; start it with a token for remote access",
            )
        response: Response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(
            _page(),
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'"
            },
        )

    @app.get("/api/state")
    def get_state() -> dict[str, Any]:
        return {
            "run": run.path.resolve().name,
            "classes": state.classes,
            "reviewer": state.reviewer,
            "token_required": token is not None,
            **state.progress(),
        }

    @app.get("/api/item/{pos}", response_model=None)
    def get_item(pos: int) -> dict[str, Any] | JSONResponse:
        if not 0 <= pos < state.order.size:
            return _err(404, f"queue position {pos} out of range [0, {state.order.size})")
        return state.item(pos)

    @app.get("/api/image/{sample_id}", response_model=None)
    def get_image(sample_id: int) -> Response:
        if not 0 <= sample_id < run.num_samples:
            return _err(404, f"unknown sample id {sample_id}")
        try:
            f = run.image_file(sample_id)
            if f is not None and run.data_root is None:
                raise ValueError(
                    f"sample {sample_id}: the run has no data root to check the image path against"
                )
        except ValueError as exc:
            return _err(403, str(exc))
        try:
            img = display_image(load_rgb(run, sample_id), size=IMAGE_SIZE)
        except (ValueError, OSError) as exc:
            return _err(404, f"image of sample {sample_id} unavailable: {exc}")
        return Response(
            png_bytes(img),
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    @app.post("/api/decision", response_model=None)
    def post_decision(body: DecisionIn) -> dict[str, Any] | JSONResponse:
        who = body.reviewer if body.reviewer is not None else (state.reviewer or "")
        try:
            row = state.store.add(
                body.sample_id, body.decision, kind=body.kind, reviewer=who, source="app"
            )
        except IndexError as exc:
            return _err(404, str(exc))
        except ValueError as exc:
            return _err(400, str(exc))
        return {"saved": True, "decision": row.to_dict(), **state.progress()}

    @app.get("/api/history/{sample_id}", response_model=None)
    def get_history(sample_id: int) -> list[dict[str, Any]] | JSONResponse:
        if not 0 <= sample_id < run.num_samples:
            return _err(404, f"unknown sample id {sample_id}")
        return [d.to_dict() for d in state.store.history(sample_id)]

    return app


def serve(
    run_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    reviewer: str | None = None,
    log_level: str = "warning",
) -> None:
    """Run the review app with uvicorn until interrupted.

    Binding to a non-loopback ``host`` requires a token: one is generated with
    :mod:`secrets` when none is given. The URL to open (with the token) is printed at start.
    """
    import uvicorn

    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    app = create_app(run_dir, reviewer=reviewer, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"labeltrace review of {Path(run_dir).resolve()}\nopen {url}", flush=True)
    if token:
        print(f"token: {token}  (send it as header {TOKEN_HEADER} or ?token=)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
