"""The review web app: FastAPI JSON API + one plain HTML/JS page (no build step).

Routes (all but ``GET /`` need the token when one is set, in header ``X-Labeltrace-Token``; never
in a URL: the page reads it from the printed link's fragment, ``/#token=...``, and sends the header):

==========================  =================================================================
``GET  /``                  the review page (HTML with its CSS and JS inlined)
``GET  /api/state``         classes, queue length, progress, resume position, consensus rule,
                            live re-ranking status, the scan's warnings about classes its models
                            overrule (``?reviewer=`` counts for that reviewer)
``GET  /api/item/{pos}``    the queue item at position ``pos`` (0-based): its labels, the
                            model's top classes, the decision shown, every reviewer's view,
                            its exact copies (:mod:`labeltrace.review.copies`)
                            (``?peek=true``: a look-ahead that does not count as shown;
                            ``?reviewer=``, ``?page=`` a tab's id: whose hold and live place;
                            ``?seq=`` the tab's request number: an older one answered late
                            moves neither; ``?resume=true``: the position this reviewer resumes
                            at instead of ``pos``, found as it is held — a page opening there)
``GET  /api/find``          ``?what=disputed|unsure|unresolved&after=POS``: the next queue
                            position after ``POS`` (wrapping around) with such a sample, and
                            how many there are (``{"position": null, "count": 0}`` for none;
                            ``?reviewer=``, ``?page=``: passing the samples others hold)
``GET  /api/jump``          ``?to=TEXT``: the queue position of a position (``pos 12``), a sample
                            id (``412``, ``id 412``) or an external id / file name, exact
                            (:mod:`labeltrace.review.jump`; holds nothing: the page then shows it
                            as any move) — ``{"position", "id", "problem", "note"}``
``GET  /api/context/{id}``  a sample's nearest examples of its given and suggested class, and
                            its per-epoch trajectory (computed once, cached in the run)
``GET  /api/image/{id}``    a sample's image as PNG (by sample id only, scaled for display;
                            ``?thumb=true``: small, for the neighbours; ``?full=true``: a large
                            image at its own resolution, up to 2048 px, for zooming in)
``POST /api/decision``      ``{"sample_id", "decision", "kind"?, "reviewer"?, "page"?, "seq"?}`` → committed row,
                            progress, and the next position for that reviewer (``reviewer`` is
                            required when the rule asks for more than one agreeing review;
                            ``"kind": "exclude", "decision": "exclude"``: the image is of no class)
``POST /api/leave``         ``{"page", "reviewer"?, "seq"?}``: that tab was closed — its sample is no
                            longer held and its place no longer steers a live re-ranking (204)
``GET  /api/history/{id}``  every decision ever stored for a sample, oldest first
==========================  =================================================================

Several reviewers share one queue: each decision keeps its reviewer, each reviewer's latest label
(or exclude) on a sample is one vote, and the consensus rule stored with the decisions settles the sample
(:mod:`labeltrace.review.state`). With a live queue (``live=``) the order re-ranks in the
background as decisions arrive (:mod:`labeltrace.relabel.live`).

Without a token the app answers only requests whose ``Host`` is a loopback name, so a web page
on another origin cannot reach it through DNS rebinding. Tokens, ``Origin``, content type and
body size are checked before routing (:mod:`labeltrace.review.security`); decision bodies are
validated with strict types, and no error response repeats what the client sent.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from labeltrace._io import digest
from labeltrace.diagnostics import contradicted_texts
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.live import LiveConfig
from labeltrace.relabel.reviewers import MAX_REVIEWER, name_key, spelling
from labeltrace.relabel.store_file import StoreReplaced
from labeltrace.report.images import display_image, load_rgb, png_bytes
from labeltrace.review import view as view_of
from labeltrace.review.blind import (
    BlindMode,
    HiddenIds,
    blind_decision,
    blind_item,
    blind_progress,
    check_mode,
    decision_source,
)
from labeltrace.review.copies import ItemCopies
from labeltrace.review.jump import MAX_JUMP, Names, locate
from labeltrace.review.rendered import MAX_BYTES, RenderedImages
from labeltrace.review.requests import (
    MAX_PAGE,
    DecisionIn,
    LeaveIn,
    decision_problem,
    validation_detail,
)
from labeltrace.review.requests import who as who_of
from labeltrace.review.security import (
    MAX_BODY_BYTES,
    TOKEN_HEADER,
    Guard,
    check_token,
    is_loopback,
)
from labeltrace.review.state import ReviewState
from labeltrace.run_files import ImageChanged
from labeltrace.rundir import QUEUE, file_mark, open_run, scan_mark

__all__ = ["TOKEN_HEADER", "create_app", "is_loopback"]

IMAGE_SIZE = 512
THUMB_SIZE = 96
FULL_SIZE = 2048  # ?full=true: the image at its own resolution, its longer side at most this
RESCANNED = ("the run was scanned again since this review started: nothing was saved; restart `labeltrace review` "
             "and reload the page")
REQUEUED = ("the review queue was written again (labeltrace queue) since this review started, and this server "
            "still deals the old one: nothing was saved; restart `labeltrace review` to review in the new order, "
            "and reload the page")


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
    run_dir: str | os.PathLike[str],
    *,
    reviewer: str | None = None,
    token: str | None = None,
    consensus: ConsensusRule | None = None,
    live: LiveConfig | None = None,
    features: str | os.PathLike[str] | None = None,
    blind: BlindMode | None = None,
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
        When set, every request but the page's own (``GET /``) must carry it in header
        ``X-Labeltrace-Token`` (``?token=`` is refused: URLs are logged); at least 16 printable
        ASCII characters without spaces (``ValueError`` otherwise: an empty token never means
        "no token"). When not set, only requests addressed to a loopback host
        name are answered.
    consensus : ConsensusRule, optional
        Agreeing reviews a sample needs; stored with the decisions (None keeps the stored rule,
        single-expert review when none).
    live : LiveConfig, optional
        Re-rank the samples no one has been shown every ``live.every`` settled samples, in the
        background (label propagation or a head refit on the run's features), dealt in turn
        to the positions right after each active reviewer (:mod:`labeltrace.relabel.live`).
    features : path, optional
        An (N, D) ``.npy`` of features to use instead of the run's own (neighbours, refits).
    blind : {"model", "all"}, optional
        Blind review (:mod:`labeltrace.review.blind`): ``"model"`` leaves the model's view and the
        other reviewers' decisions out of every answer, ``"all"`` the given label too; the context
        and history routes answer 403.
    """
    token = check_token(token)
    blind = check_mode(blind)
    if blind is not None and live is not None:  # refused before the live queue ranks anything
        raise ValueError("a blind review cannot re-rank live (--live): the order, and its status, would follow "
                         "the other reviewers' decisions")  # fmt: skip
    run = open_run(run_dir)
    state = ReviewState(run, reviewer=reviewer, consensus=consensus, live=live,
                        features=None if features is None else str(features),
                        log=lambda m: print(m, flush=True))  # fmt: skip
    app = FastAPI(title="labeltrace review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = state

    mark = scan_mark(run.path)  # the scan served: another one in the folder stops every answer
    queued = file_mark(run.path / QUEUE)  # the queue dealt: another one too (the exports read the new one)

    def stale() -> str | None:
        return RESCANNED if scan_mark(run.path) != mark else REQUEUED if file_mark(run.path / QUEUE) != queued else None

    # what a page opened here shows: a restart on the same scan in the same mode keeps it (the ids
    # mean the same images), another run or mode does not (security.Guard's 6.)
    view = digest([str(run.path.resolve()), mark, blind])
    app.add_middleware(Guard, token=token, max_body=MAX_BODY_BYTES, view=view,
                       stale=stale)
    state.own_only = blind is not None
    if state.store.read_only:
        raise ValueError(f"{state.store.path} can only be read here (a write-protected file or folder): the review "
                         "page could save no decision; copy the run to a folder you may write")  # fmt: skip
    # each image decoded once for every reviewer and visit; not shared on a blind review, where how
    # fast an image comes would tell which ones colleagues have opened
    rendered = RenderedImages(max_bytes=0 if blind is not None else MAX_BYTES)
    hidden = HiddenIds.for_store(run.num_samples, state.store) if blind == "all" else None  # ids telling the class

    def page_name(reviewer: str | None) -> str | None:
        """The reviewer a request speaks for: its name, else the server's --reviewer; a blind page
        always one (a nameless one is "anonymous", as its decisions are stored), as the store
        spells it — its own decisions are all it may see."""
        who = who_of(reviewer) or state.reviewer
        return state.store.stored_spelling(who or "") if blind is not None else who

    @app.exception_handler(StoreReplaced)
    async def store_replaced(request: Request, exc: StoreReplaced) -> JSONResponse:
        print(f"labeltrace review: {exc}", file=sys.stderr, flush=True)  # the path: the console only
        return _err(409, RESCANNED)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(
            _page(),
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                "style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'"
            },
        )

    @app.get("/api/state")
    def get_state(reviewer: Annotated[str | None, Query(max_length=MAX_REVIEWER)] = None
                  ) -> dict[str, Any]:  # fmt: skip
        who = page_name(reviewer)
        # the scan's warnings about classes its models overrule (absent in runs from before them),
        # and its others (a cut that accuses most samples, ...): the model's view, hidden when blind
        warned = [] if blind else contradicted_texts(run.meta.get("contradicted_classes") or []) + list(
            run.meta.get("warnings") or [])
        progress = state.progress(who)
        if blind is not None:  # every blind decision is named: the page marks the box as needed
            progress["rule"] = {**progress["rule"], "names": True}
        return {
            "run": run.path.resolve().name,
            "classes": state.classes,
            "reviewer": state.reviewer,
            "token_required": token is not None,
            "blind": blind,
            "view": view,
            "warnings": warned,
            **(blind_progress(progress) if blind else progress),
        }

    @app.get("/api/item/{pos}", response_model=None)
    def get_item(pos: int, reviewer: Annotated[str | None, Query(max_length=MAX_REVIEWER)] = None,
                 peek: bool = False, page: Annotated[str | None, Query(max_length=MAX_PAGE)] = None,
                 seq: Annotated[int | None, Query(ge=0)] = None, resume: bool = False
                 ) -> dict[str, Any] | JSONResponse:  # fmt: skip
        total = state.order().size
        if not 0 <= pos < total:
            return _err(404, f"queue position out of range [0, {total})")
        # shown to a reviewer (not a peek): a live re-ranking leaves it where it is
        me = page_name(reviewer)
        # resume: the page opens where this reviewer resumes, found as it is held (not at pos, read
        # from /api/state before: two reviewers opening at once were sent to one sample)
        it = view_of.item(state, pos, me, shown=not peek, page=page, seq=seq, resume=resume)
        it["copies"] = copies.of(it["id"], state.verdicts())  # exact copies: a blind page drops what it hides
        if blind is None:
            return it
        assert me is not None  # a blind page always speaks for one reviewer
        own = sum(d.reviewer == me for d in state.store.history(it["id"]))
        out = blind_item(it, blind, reviewer=me, own_history=own)
        if hidden is not None:
            out["id"] = hidden.shown(out["id"])
            if out["decision"] is not None:
                out["decision"]["sample_id"] = out["id"]
        return out

    @app.get("/api/find", response_model=None)
    def find(what: Annotated[str, Query(pattern="^(disputed|unsure|unresolved)$")], after: int = -1,
             reviewer: Annotated[str | None, Query(max_length=MAX_REVIEWER)] = None,
             page: Annotated[str | None, Query(max_length=MAX_PAGE)] = None) -> dict[str, Any] | JSONResponse:  # fmt: skip
        if blind is not None:
            return _err(403, "blind review: the other reviewers' decisions are not shown")
        pos, count = state.find(after, what, page_name(reviewer), page)
        return {"position": pos, "count": count}

    names = Names(run)
    copies = ItemCopies(run)

    @app.get("/api/jump")
    def jump(to: Annotated[str, Query(max_length=MAX_JUMP)]) -> dict[str, Any]:
        # a look-up only: the page then asks for the item, which shows and holds it as any move does
        return locate(state, to, names, hidden)

    @app.get("/api/context/{sample_id}", response_model=None)
    def get_context(sample_id: int) -> dict[str, Any] | JSONResponse:
        if blind is not None:
            return _err(403, "blind review: the model's context of a sample is not shown")
        if not 0 <= sample_id < run.num_samples:
            return _err(404, f"unknown sample id: ids lie in [0, {run.num_samples})")
        try:
            return view_of.context_of(state, sample_id)
        except StoreReplaced:  # a ValueError too: answered 409 by its handler
            raise
        except (ValueError, OSError):
            return _err(503, f"no context for sample {sample_id}: the run's features are missing")

    @app.get("/api/image/{sample_id}", response_model=None)
    def get_image(sample_id: int, thumb: bool = False, full: bool = False) -> Response:
        if not 0 <= sample_id < run.num_samples:
            return _err(404, f"unknown sample id: ids lie in [0, {run.num_samples})")
        shown = sample_id  # the id the page names (--blind-all: a hidden one, never the real one in a message)
        sample_id = hidden.real(sample_id) if hidden is not None else sample_id
        # the reason names files on the server: it goes to the server's console, not to the page
        try:
            path = run.image_file(sample_id)  # inside the roots the scan allowed, or refused
        except ValueError as exc:
            print(f"labeltrace review: {exc}", file=sys.stderr, flush=True)
            return _err(403, f"image of sample {shown} refused: it lies outside the folders the scan "
                        "read (the server's console says where)")  # fmt: skip
        def render() -> bytes:
            img = load_rgb(run, sample_id)
            # full: a large image at its own resolution (to zoom in), a small one as for display
            size = THUMB_SIZE if thumb else max(IMAGE_SIZE, min(max(img.shape[:2]), FULL_SIZE)) if full else IMAGE_SIZE
            return png_bytes(display_image(img, size=size))

        try:
            st = path.stat() if path is not None else None  # a file changed since it was kept: read again
            data = rendered.get((sample_id, thumb, full, st and (st.st_mtime_ns, st.st_size)), render)
        except (ValueError, OSError) as exc:
            print(f"labeltrace review: image of sample {sample_id} unavailable: {exc}", file=sys.stderr, flush=True)
            if isinstance(exc, ImageChanged):  # the page may say what, not where (the console names the file)
                return _err(404, f"image of sample {shown} not shown: its file changed since the scan (another "
                            "picture than the one scored)")  # fmt: skip
            return _err(404, f"image of sample {shown} unavailable (the server's console says why)")
        return Response(
            data,
            media_type="image/png",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    @app.post("/api/decision", response_model=None)
    def post_decision(body: DecisionIn) -> dict[str, Any] | JSONResponse:
        sent = body.sample_id  # the id the page was shown, which its messages name (--blind-all: a hidden one)
        if hidden is not None and 0 <= sent < run.num_samples:
            body = body.model_copy(update={"sample_id": hidden.real(sent)})
        who = who_of(body.reviewer) or state.reviewer or ""  # an empty name is the default reviewer, as in GET
        problem = decision_problem(state, body, who, named=sent, blind=blind is not None)
        if problem is not None:
            return _err(*problem)
        if not state.rule.one_vote_settles and who_of(who) is None:  # nameless votes would all be one "anonymous"
            return _err(400, f"sample {sent}: this review needs a reviewer name ({state.rule.describe()}: "
                        "each reviewer's vote counts once); enter your name in the Reviewer box, or send "
                        "\"reviewer\"")  # fmt: skip
        if blind is not None and (who_of(who) is None or name_key(who) == name_key(spelling(""))):
            # nameless pages would all read one "anonymous"'s votes (a reviewer so named: theirs)
            return _err(400, f"sample {sent}: a blind review needs a reviewer name of your own (each reviewer sees "
                        "their own decisions only; nameless decisions are stored as 'anonymous'); enter your name "
                        "in the Reviewer box, or send \"reviewer\"")  # fmt: skip
        try:
            row = state.store.add(
                body.sample_id, body.decision, kind=body.kind, reviewer=who, source=decision_source(blind)
            )
        except StoreReplaced:  # a ValueError too: answered 409 by its handler
            raise
        except (IndexError, ValueError):  # the checks above mirror the store's; never echo
            return _err(400, f"sample {sent}: decision refused")
        except sqlite3.Error as exc:  # a full disk, a lock held too long: the page says so, not "HTTP 500"
            print(f"labeltrace review: decision on sample {sent} not saved: {exc}", file=sys.stderr, flush=True)
            return _err(503, f"sample {sent}: NOT saved, the server could not write its decisions file ({exc}; a "
                        "full disk?); press the key again once it can")  # fmt: skip
        state.sync()  # the live queue takes it in; a due refresh starts in the background
        name = page_name(who)
        state.leases.release(row.sample_id, name)  # decided: no longer held open for this reviewer
        order = state.order()  # one snapshot: a live refresh may swap the order in the background
        pos = int(state.positions(order)[row.sample_id])
        # held for this page from now (found and held in one step): a colleague deciding meanwhile is
        # sent elsewhere, before this page loads it; shown, so a live refresh keeps it at nxt
        nxt = state.show_next(pos, name, order, body.page, body.seq) if pos >= 0 else None
        if blind is None:
            return {"saved": True, "decision": row.to_dict(), "next": nxt, **state.progress(name)}
        decision = blind_decision(row.to_dict())
        if hidden is not None:
            decision["sample_id"] = sent
        return {"saved": True, "decision": decision, "next": nxt, **blind_progress(state.progress(name))}

    @app.post("/api/leave", status_code=204, response_model=None)
    def leave(body: LeaveIn) -> Response:
        # the page's last word as its tab closes (a keepalive fetch on pagehide): its hold and its
        # live place had outlived it by two and ten minutes
        state.leave(page_name(body.reviewer), body.page, body.seq)
        return Response(status_code=204)

    @app.get("/api/history/{sample_id}", response_model=None)
    def get_history(sample_id: int) -> list[dict[str, Any]] | JSONResponse:
        if blind is not None:
            return _err(403, "blind review: the decisions of the other reviewers are not shown")
        if not 0 <= sample_id < run.num_samples:
            return _err(404, f"unknown sample id: ids lie in [0, {run.num_samples})")
        return [d.to_dict() for d in state.store.history(sample_id)]

    return app
