"""The review server's request guard: token, Host, Origin, content type and body size.

One pure ASGI middleware, :class:`Guard`, runs before routing and before any body is parsed:

1. **Token** — when the app has one, every request but ``GET /`` must carry it in header
   ``X-Labeltrace-Token``, else 401; never in a URL, where a reverse proxy's access log, the
   browser's history and a ``Referer`` would keep it (``?token=`` alone is refused, saying so).
   ``GET /`` is the page itself: static, the same for every server, with no data of the run; it
   reads the token from the fragment of the printed link (``/#token=...``, which a browser never
   sends) or from ``?token=`` of a link printed by an older version, moves it out of the address
   bar into the tab's ``sessionStorage`` (the browser's history keeps the link it was opened with,
   fragment and all: the token lasts as long as the server), and sends it as the header, its images
   too (fetched, shown from object URLs). A token is at least :data:`MIN_TOKEN_LENGTH` printable ASCII
   characters without spaces (:func:`check_token`): an empty or short one
   (``--token "$UNSET_VAR"``) is refused when the app is built.
2. **Host** — without a token only requests addressed to a loopback name are answered (403), so
   a page on another site cannot reach the local server through DNS rebinding; nor are requests
   a reverse proxy says it relays for someone (``X-Forwarded-For``, ``Forwarded``,
   ``X-Forwarded-Host``, ``X-Real-IP``), whose ``Host`` may name the loopback server itself: a
   server behind a proxy needs a token. (A proxy that sends none of these cannot be told from
   a local client.)
3. **Origin** — a state-changing request (POST, PUT, PATCH, DELETE) from a browser must come
   from the page itself: ``Sec-Fetch-Site``, when sent, must be ``same-origin`` (or ``none``);
   from a browser that does not send it, ``Origin``, when sent, must name the ``Host`` the
   request was addressed to, with its scheme; otherwise 403, token or not. The same holds for
   every request to ``/api/`` (reading an item marks it shown); the page itself may be opened
   from a link on another site. Clients that send neither (curl, scripts) are not browsers and
   cannot be driven by another site. ``Sec-Fetch-Site`` is the browser's own word and survives a
   reverse proxy, which may rewrite ``Host`` or drop its port and scheme (for older browsers,
   forward ``Host`` with its port and ``X-Forwarded-Proto``).
4. **Content type** — state-changing requests must be ``application/json`` (415), so no HTML
   form can submit one.
5. **Body size** — at most :data:`MAX_BODY_BYTES`: a larger ``Content-Length`` is refused at
   once and a body without one is read only up to the limit (413); the app then receives the
   buffered body.
6. **View** — the page sends, in header ``X-Labeltrace-View``, the view it was opened on (which
   run, which scan of it, which blind mode: ``GET /api/state``'s ``view``); an API request whose
   view is not the server's is refused (409), so a page left open while the server was restarted
   on another run or in another mode, where the same sample id is another image, saves nothing
   and is told to reload. A request without the header (a script) is not checked.

Refusals are short JSON ``{"detail": ...}`` messages that never repeat what the client sent.
Every response gets ``Cache-Control: no-store`` (unless set), ``X-Content-Type-Options:
nosniff`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "MAX_BODY_BYTES",
    "MIN_TOKEN_LENGTH",
    "OTHER_VIEW",
    "TOKEN_HEADER",
    "VIEW_HEADER",
    "Guard",
    "check_token",
    "is_loopback",
]

TOKEN_HEADER = "X-Labeltrace-Token"
VIEW_HEADER = "X-Labeltrace-View"
#: the 409 of a page opened on another view (a restart on another run, or in another blind mode)
OTHER_VIEW = ("this page was opened on another review: the server was restarted since, on another run, another scan "
              "of it or in another blind mode, where a sample id may be another image; nothing was saved: reload the "
              "page")
MIN_TOKEN_LENGTH = 16
MAX_BODY_BYTES = 64 * 1024
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_DEFAULT_PORTS = {"http": "80", "https": "443"}
#: headers with which a reverse proxy says whom it relays a request for
_RELAYED = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def check_token(token: str | None) -> str | None:
    """``token`` unchanged when usable; ``ValueError`` saying what is needed when not."""
    if token is None:
        return None
    if not isinstance(token, str):
        raise TypeError(f"the review token must be a string, got {type(token).__name__}")
    # printable ASCII: a header carries it as is, and the URL printed for it (quoted) opens the page
    if len(token) < MIN_TOKEN_LENGTH or any(not "!" <= c <= "~" for c in token):
        hint = (
            ' (an empty token often comes from an unset variable, e.g. --token "$UNSET")'
            if not token.strip()
            else ""
        )
        raise ValueError(
            f"the review token must be at least {MIN_TOKEN_LENGTH} characters, printable ASCII "
            f"without spaces; got {len(token)} characters{hint}. Leave --token out (and LABELTRACE_TOKEN "
            "unset) to have a random one generated and printed"
        )
    return token


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (``127.0.0.0/8``, ``::1``)."""
    h = host.strip().strip("[]").lower()
    if h in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without port or IPv6 brackets."""
    h = host_header.strip()
    if h.startswith("["):  # [::1]:8765
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _netloc(scheme: str, netloc: str) -> str:
    """``host[:port]`` lower-cased, without the scheme's default port."""
    n = netloc.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default and n.endswith(f":{default}") and not n.endswith("]"):
        n = n[: -len(default) - 1]
    return n


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """True when the ``Origin`` header names the host (and port) the request was sent to."""
    try:
        o = urlsplit(origin.strip())
    except ValueError:
        return False
    if o.scheme not in ("http", "https") or not o.netloc or o.path not in ("", "/"):
        return False
    if o.scheme != scheme and scheme in ("http", "https"):
        return False
    return _netloc(o.scheme, o.netloc) == _netloc(o.scheme, host)


def route_path(scope: Scope) -> str:
    """The request's path inside the app: without the ``root_path`` it is mounted under (a
    Starlette ``Mount``, ``uvicorn --root-path``), as routing sees it."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", "")).rstrip("/")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if status == 401:  # RFC 9110: a 401 names the scheme it wants
        headers.append((b"www-authenticate", TOKEN_HEADER.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware applying the checks of the module docstring to every HTTP request."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int = MAX_BODY_BYTES,
                 stale: Callable[[], str | None] | None = None, view: str | None = None) -> None:  # fmt: skip
        self.app = app
        self.token = check_token(token)
        self.max_body = int(max_body)
        self.stale = stale  # why the API may no longer answer (the run was scanned again), or None
        self.view = view  # what the page must have been opened on, when it says (VIEW_HEADER)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", []):  # the first value of each header counts
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        method, path = scope.get("method", "GET").upper(), route_path(scope)
        if self.token is not None:
            given = headers.get(TOKEN_HEADER.lower(), "")
            page = method in ("GET", "HEAD") and path == "/"  # the page: it reads the token from the fragment
            if not page and not secrets.compare_digest(given.encode(), self.token.encode()):
                if not given and "token" in parse_qs(scope.get("query_string", b"").decode("latin-1")):
                    return 401, (f"send the token as header {TOKEN_HEADER}: ?token= in a URL is not accepted "
                                 "(proxies' access logs and browser history keep URLs)")  # fmt: skip
                return 401, f"missing or wrong token (send header {TOKEN_HEADER})"
        elif not is_loopback(host_name(headers.get("host", ""))):
            return (
                403,
                "this server answers only on localhost; start it with a token for remote access",
            )
        elif any(h in headers for h in _RELAYED):  # a proxy's Host may name the loopback server itself
            return (
                403,
                "this server answers only on localhost, and this request was relayed by a proxy for "
                "another machine; start it with a token (--token) to serve it through a proxy",
            )
        site, origin = headers.get("sec-fetch-site"), headers.get("origin")
        # the browser's own word on where a request comes from, when it gives one (every current
        # browser): a reverse proxy rewrites Host (nginx's default: the upstream's address) or
        # leaves out its port and scheme, so Origin compared with Host refused the page's own
        # decisions behind one; Origin against Host only for a browser that sends no Sec-Fetch-Site
        if site is not None:
            foreign = site.strip().lower() not in ("same-origin", "none")
        else:
            foreign = origin is not None and not same_origin(origin, headers.get("host", ""),
                                                             scope.get("scheme", "http"))  # fmt: skip
        changing = method in STATE_CHANGING
        api = path.startswith("/api/")  # mounted under a prefix too
        # even a GET of the API: showing an item pins it in the live queue and steers its
        # re-ranking (an <img> on any site could otherwise mark the whole queue seen)
        if foreign and (changing or api):
            return 403, "cross-origin request refused: the review page alone may call the API"
        if changing:
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return 415, "send the request body as application/json"
        length = headers.get("content-length")
        # ASCII digits only: "²".isdigit() is true, and int("²") raised (a 500)
        if length is not None and (re.fullmatch(r"[0-9]+", length.strip()) is None or int(length) > self.max_body):
            return 413, f"request body larger than {self.max_body} bytes"
        opened_on = headers.get(VIEW_HEADER.lower())
        if api and self.view is not None and opened_on is not None and opened_on != self.view:
            return 409, OTHER_VIEW
        why = self.stale() if self.stale is not None and api else None
        return (409, why) if why is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _refuse(send, 413, f"request body larger than {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                headers = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in (b"x-content-type-options", b"referrer-policy")
                ]
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, replay, send_secured)
