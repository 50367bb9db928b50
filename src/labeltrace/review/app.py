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
on another origin cannot reach it through DNS rebinding. Tokens, ``Origin``, content type and
body size are checked before routing (:mod:`labeltrace.review.security`); decision bodies are
validated with strict types, and no error response repeats what the client sent.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from labeltrace._checks import listing
from labeltrace.relabel.decisions import KINDS, MAX_REVIEWER, ReviewStore
from labeltrace.relabel.order import review_order
from labeltrace.report.images import display_image, load_rgb, png_bytes
from labeltrace.review.security import (
    MAX_BODY_BYTES,
    TOKEN_HEADER,
    Guard,
    check_token,
    is_loopback,
)
from labeltrace.rundir import REVIEWS_DB, Run, open_run

__all__ = ["TOKEN_HEADER", "create_app", "is_loopback", "serve"]

IMAGE_SIZE = 512


class DecisionIn(BaseModel):
    """Body of ``POST /api/decision``: strict JSON types (no ``true`` or ``"3"`` for an id), no
    other fields."""

    model_config = ConfigDict(strict=True, extra="forbid")

    sample_id: StrictInt
    decision: StrictStr
    kind: StrictStr | None = None
    reviewer: StrictStr | None = None


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


_LOCATIONS = {"body", "query", "path", "header", "cookie"}
_FIELDS = set(DecisionIn.model_fields) | {"pos", "sample_id"}


def _validation_detail(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors without what the client sent.

    The default handler returns each error's ``input`` (and ``ctx``); a key the client made up
    would also come back in ``loc``. Keep the message and type, and only the parts of ``loc``
    the app itself defines.
    """
    out = []
    for e in list(errors)[:10]:
        loc = [
            x if isinstance(x, int) or x in _LOCATIONS or x in _FIELDS else "(unknown field)"
            for x in e.get("loc", ())
        ]
        out.append({"loc": loc, "msg": str(e.get("msg", ""))[:200], "type": str(e.get("type", ""))})
    return out


def _decision_problem(state: _Review, body: DecisionIn, reviewer: str) -> tuple[int, str] | None:
    """Why a decision cannot be stored, in words that do not repeat the submitted values."""
    n = state.run.num_samples
    if not 0 <= body.sample_id < n:
        return 404, f"unknown sample id: ids lie in [0, {n})"
    i, kind, decision = body.sample_id, body.kind, body.decision
    if kind is not None and kind not in KINDS:
        return 400, f"sample {i}: kind must be one of {', '.join(KINDS)}"
    actions = ("unsure", "skip")
    if kind is None:
        if decision in actions and decision in state.classes:
            return 400, (
                f"sample {i}: {decision!r} is both a class and a review action; send kind "
                f"'label' or {decision!r}"
            )
        kind = decision if decision in actions else "label"
    if kind == "label" and decision not in state.classes:
        return 400, (
            f"sample {i}: decision must be a class ({listing(state.classes, limit=50)}) or a "
            f"review action ({', '.join(actions)})"
        )
    if len(" ".join(reviewer.split())) > MAX_REVIEWER:
        return 400, f"sample {i}: reviewer name longer than {MAX_REVIEWER} characters"
    return None


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
        When set, every request must carry it (header ``X-Labeltrace-Token`` or ``?token=``);
        at least 16 printable characters without spaces (``ValueError`` otherwise: an empty
        token never means "no token"). When not set, only requests addressed to a loopback host
        name are answered.
    """
    token = check_token(token)
    run = open_run(run_dir)
    state = _Review(run, reviewer)
    app = FastAPI(title="labeltrace review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state

    app.add_middleware(Guard, token=token, max_body=MAX_BODY_BYTES)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc.errors())}, status_code=422)

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
            return _err(404, f"queue position out of range [0, {state.order.size})")
        return state.item(pos)

    @app.get("/api/image/{sample_id}", response_model=None)
    def get_image(sample_id: int) -> Response:
        if not 0 <= sample_id < run.num_samples:
            return _err(404, f"unknown sample id: ids lie in [0, {run.num_samples})")
        try:
            run.image_file(sample_id)  # inside the roots the scan allowed, or refused
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
        problem = _decision_problem(state, body, who)
        if problem is not None:
            return _err(*problem)
        try:
            row = state.store.add(
                body.sample_id, body.decision, kind=body.kind, reviewer=who, source="app"
            )
        except (IndexError, ValueError):  # the checks above mirror the store's; never echo
            return _err(400, f"sample {body.sample_id}: decision refused")
        return {"saved": True, "decision": row.to_dict(), **state.progress()}

    @app.get("/api/history/{sample_id}", response_model=None)
    def get_history(sample_id: int) -> list[dict[str, Any]] | JSONResponse:
        if not 0 <= sample_id < run.num_samples:
            return _err(404, f"unknown sample id: ids lie in [0, {run.num_samples})")
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
    :mod:`secrets` when none is given (``None``); a given token that is empty or shorter than
    16 characters is refused with ``ValueError``, whatever the host. The URL to open (with the
    token) is printed at start.
    """
    import uvicorn

    token = check_token(token)
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    app = create_app(run_dir, reviewer=reviewer, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"labeltrace review of {Path(run_dir).resolve()}\nopen {url}", flush=True)
    if token:
        print(f"token: {token}  (send it as header {TOKEN_HEADER} or ?token=)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
