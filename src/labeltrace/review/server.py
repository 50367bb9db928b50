"""Running the review app: the port taken first, the URL and the session's settings printed, then
uvicorn until interrupted (:func:`serve`). The app itself is :func:`labeltrace.review.app.create_app`."""

from __future__ import annotations

import errno
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import FastAPI

from labeltrace._checks import counted
from labeltrace.relabel.consensus import ConsensusRule
from labeltrace.relabel.earlier import settled_before
from labeltrace.relabel.live import LiveConfig
from labeltrace.relabel.runstore import notices
from labeltrace.review.app import create_app
from labeltrace.review.blind import BlindMode
from labeltrace.review.security import TOKEN_HEADER, check_token, is_loopback
from labeltrace.rundir import QUEUE

__all__ = ["listen", "serve", "warm_context"]


def serve(
    run_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    reviewer: str | None = None,
    log_level: str = "warning",
    consensus: ConsensusRule | None = None,
    live: LiveConfig | None = None,
    features: str | os.PathLike[str] | None = None,
    blind: BlindMode | None = None,
    public_url: str | None = None,
) -> None:
    """Run the review app with uvicorn until interrupted.

    Every server has a token, on loopback too (another user of a shared machine reaches
    ``127.0.0.1``): one is generated with :mod:`secrets` when none is given (``None``); a given
    token that is empty, shorter than 16
    characters or not printable ASCII without spaces is refused with ``ValueError``, whatever the
    host. The URL to open (with the token in its fragment, ``#token=``, which the browser keeps
    to itself) is printed once the port is taken; ``port`` 0 takes a
    free one. A port that cannot be taken (in use) is an ``OSError`` naming it, raised before
    anything is printed or stored (the consensus rule). ``public_url``: the address reviewers open
    behind a reverse proxy (``https://host/labeltrace/``), printed with the token instead of the
    server's own, which only the proxy reaches (an ``http(s)://`` URL without a query or fragment,
    else ``ValueError``).
    """
    token = check_token(token)
    public = None if public_url is None else check_public_url(public_url)
    if token is None:  # loopback too: every user of a shared server reaches 127.0.0.1
        token = secrets.token_urlsafe(24)
    # the port first: one in use is an error before any URL is printed, or the rule stored (--agree)
    sock = listen(host, port)
    try:
        app = create_app(run_dir, reviewer=reviewer, token=token, consensus=consensus, live=live,
                         features=features, blind=blind)  # fmt: skip
    except BaseException:
        sock.close()
        raise
    port = int(sock.getsockname()[1])  # port 0: the free one the system chose
    name = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host  # every interface: this machine's name
    shown = f"[{name}]" if ":" in name else name
    # the token in the fragment: a browser never sends it (no proxy's log, no Referer); the page
    # reads it there, sends it as a header and takes it out of the address bar
    here = f"http://{shown}:{port}/"
    url = (public or here) + (f"#token={quote(token, safe='')}" if token else "")
    print(f"labeltrace review of {Path(run_dir).resolve()}\nopen {url}"
          + (f"  (through the proxy; the server itself listens on {here})" if public else ""), flush=True)
    if not is_loopback(host):
        print(f"warning: the review server listens on {host or 'every interface'}, reachable from other "
              "machines over plain HTTP, where the token and the images can be read on the way; for "
              "reviewers elsewhere put it behind an HTTPS reverse proxy or an SSH tunnel", flush=True)  # fmt: skip
    st = app.state.review
    for text in notices(st.run):
        print(f"warning: {text}", flush=True)
    settled = settled_before(st.run)[0]
    if settled is not None and settled.any() and not (st.run.path / QUEUE).exists():
        k = int(settled.sum())
        print(f"note: {counted(k, 'sample')} {'was' if k == 1 else 'were'} settled by an earlier review round (the "
              f"manifest's review_status); this page serves the scan's order, `labeltrace queue {run_dir} --out FILE` "
              "queues them after the others", flush=True)  # fmt: skip
    print(f"consensus: {st.rule.describe()}"
          + (f"; live re-ranking by {live.method} every {live.every} settled samples ({st.method})"
             if live is not None else "")
          + ("; blind review: the model's view, the other reviewers' decisions"
             + (" and the given label" if blind == "all" else "") + " are hidden" if blind else ""),
          flush=True)  # fmt: skip
    if token:
        print(f"token: {token}  (scripts: send it as header {TOKEN_HEADER}, never in a URL)", flush=True)
    if blind is None:  # the page's context (features, neighbours) built while the reviewer opens the page,
        warm_context(st.context)  # not inside the first request (minutes at 100k images without an embedding)
    _run(app, sock, host=host, port=port, log_level=log_level)


def check_public_url(url: str) -> str:
    """``url`` (``--public-url``) as the printed link's base, with a slash at the end of its path
    (the page asks for ``api/...`` beside itself) and the characters a link cannot hold (a space, a
    non-ASCII letter) percent-encoded, ``%XX`` kept; not an ``http(s)://HOST[:PORT]/...`` address (no
    host, a port that is not a number in 1..65535, a broken IPv6 ``[...]``), or one with a query or
    fragment of its own: ``ValueError``."""
    bad = "--public-url must be an http:// or https:// address with a host, e.g. https://example.org/labeltrace/"
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # a port that is not a number in 0..65535 raises here
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise ValueError(f"{bad}: {exc}, got {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in parts.netloc):
        raise ValueError(f"{bad}, got {url!r}")
    if port == 0:
        raise ValueError(f"{bad}: its port must be a number in 1..65535, got {url!r}")
    if parts.query or parts.fragment or url.strip().endswith(("?", "#")):
        raise ValueError(f"--public-url takes no query or fragment (the token goes in the printed link's own "
                         f"fragment), got {url!r}")  # fmt: skip
    path = quote(parts.path, safe="/%:@!$&'()*+,;=~")  # a space would end the link in a terminal
    path = path if path.endswith("/") else f"{path}/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def warm_context(context: Any) -> threading.Thread:
    """Build (or read) ``context`` in a background thread; an error is left for the request that
    needs it to report (a request waits on the context's lock meanwhile)."""
    def build() -> None:
        try:
            context.load()
        except Exception:  # noqa: BLE001 - said by /api/context, where it matters
            pass

    t = threading.Thread(target=build, name="labeltrace-review-context", daemon=True)
    t.start()
    return t


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (``port`` 0: a free one), or an ``OSError`` that
    says which address could not be taken and what to do."""
    try:
        family, _, _, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                    flags=socket.AI_PASSIVE)[0]  # fmt: skip
        both = family == socket.AF_INET6 and addr[0] == "::" and socket.has_dualstack_ipv6()  # IPv4 clients too
        return socket.create_server(addr[:2], family=family, backlog=2048, dualstack_ipv6=both)
    except OSError as exc:  # a host that does not resolve: gaierror, whose code is no errno
        code = None if isinstance(exc, socket.gaierror) else exc.errno
        why = os.strerror(code) if code else (exc.strerror or str(exc))
        hint = ("another program (or another review server) listens there: choose another --port (0 picks "
                "a free one)" if exc.errno == errno.EADDRINUSE else "check --host and --port")  # fmt: skip
        raise OSError(f"cannot listen on {host or 'every interface'} port {port}: {why}; {hint}") from None


def _run(app: FastAPI, sock: socket.socket, *, host: str, port: int, log_level: str) -> None:
    """uvicorn serving ``app`` on the bound ``sock`` until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level)).run(sockets=[sock])
