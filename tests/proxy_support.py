"""A reverse proxy in one ASGI wrapper, for the tests of the review server behind one: it serves
the app under a path prefix (``https://host/labeltrace/``), strips the prefix as nginx's
``proxy_pass http://127.0.0.1:8765/;`` does, and rewrites the request's headers as a proxy
would (``Host`` the upstream's address, nginx's default; ``X-Forwarded-*``); HTTPS ends at the
proxy, so the app sees plain HTTP."""

from __future__ import annotations

from typing import Any

PREFIX = "/labeltrace"
UPSTREAM = "127.0.0.1:8765"  # the Host nginx sends by default ($proxy_host)


def behind_proxy(app: Any, *, prefix: str = PREFIX, host: str | None = UPSTREAM,
                 forwarded: dict[str, str] | None = None, log: list[str] | None = None) -> Any:  # fmt: skip
    """``app`` answering under ``prefix`` only (404 elsewhere), with ``Host`` set to ``host``
    (None: the client's kept, as ``proxy_set_header Host $http_host``) and ``forwarded`` headers
    added; ``log``, when given, gets each request's path and query as it came in (what an access
    log keeps: nginx's ``$request_uri``)."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (forwarded or {}).items()]

    async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope["path"]
        if log is not None:
            raw = scope.get("raw_path") or path.encode()
            query = scope.get("query_string", b"")
            log.append((raw + (b"?" + query if query else b"")).decode("latin-1"))
        if not (path == prefix or path.startswith(prefix + "/")):
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"not found (outside the proxied prefix)"})
            return
        inner = path[len(prefix) :] or "/"
        headers = [(k, v) for k, v in scope["headers"] if host is None or k.lower() != b"host"]
        if host is not None:
            headers.append((b"host", host.encode("latin-1")))
        # HTTPS ends at the proxy: the app is reached over plain HTTP
        scope = {**scope, "scheme": "http", "path": inner, "raw_path": inner.encode(), "headers": headers + extra}
        await app(scope, receive, send)

    return proxy
