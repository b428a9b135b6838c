"""ASGI middleware (Starlette, FastAPI, Quart, any ASGI app): the gateway
contract in front of the application.

    app = KeygateMiddleware(app, verifier, scope="invoices:read")

A refused request is answered here (401/403 with an RFC 6750 challenge,
400, 503 with Retry-After). A forwarded one reaches the application without
its key headers, with the principal header set (a client's own copy is
dropped) and `scope["state"]["keygate"]` holding the `Verdict` (Starlette:
`request.state.keygate`); a rotated key's response gets Deprecation/Sunset.
"""
from typing import Any, Awaitable, Callable, MutableMapping, Optional

from ._keygate import Verifier

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class KeygateMiddleware:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], verifier: Verifier,
                 scope: Optional[str] = None) -> None:
        self.app, self.verifier, self.scope = app, verifier, scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        d = self.verifier.check(scope["headers"], self.scope)
        extra = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in d.response_headers]
        if not d.forward:
            body = d.body.encode()
            await send({"type": "http.response.start", "status": d.status,
                        "headers": extra + [(b"content-type", b"text/plain; charset=utf-8"),
                                            (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        strip = {n.encode("latin-1") for n in d.strip}
        headers = [(n, v) for n, v in scope["headers"] if n.lower() not in strip]
        if d.principal_value is not None:
            headers.append((d.principal_header.encode("latin-1"), d.principal_value.encode("latin-1")))
        state = dict(scope.get("state") or {})
        state["keygate"] = d.verdict
        scope = dict(scope, headers=headers, state=state)
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_deprecation(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=list(message.get("headers", [])) + extra)
            await send(message)

        await self.app(scope, receive, send_with_deprecation)
