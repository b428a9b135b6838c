"""WSGI middleware (Flask, Django, any WSGI app): the gateway contract in
front of the application.

    app.wsgi_app = KeygateMiddleware(app.wsgi_app, verifier, scope="invoices:read")   # Flask

A refused request is answered here (401/403 with an RFC 6750 challenge,
400, 503 with Retry-After). A forwarded one reaches the application without
its key headers, with the principal header set (a client's own copy is
dropped) and `environ["keygate.verdict"]` holding the `Verdict`; a rotated
key's response gets Deprecation/Sunset.
"""
from typing import Any, Callable, Iterable, List, Optional, Tuple

from ._keygate import Decision, Verifier


def request_headers(environ: dict) -> List[Tuple[str, str]]:
    """The request's headers as (name, value) pairs from a WSGI environ
    (`HTTP_X_API_KEY` is `x-api-key`; the core matches `_` and `-` alike)."""
    out = []
    for k, v in environ.items():
        if k.startswith("HTTP_"):
            out.append((k[5:].replace("_", "-").lower(), v))
    return out


def apply(environ: dict, d: Decision) -> None:
    """A forwarded request's changes to the environ: key headers out, the
    principal in, the verdict kept."""
    strip = {n.replace("-", "_").upper() for n in d.strip}
    for k in [k for k in environ if k.startswith("HTTP_") and k[5:] in strip]:
        del environ[k]
    if d.principal_value is not None:
        environ["HTTP_" + d.principal_header.replace("-", "_").upper()] = d.principal_value
    environ["keygate.verdict"] = d.verdict


class KeygateMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]], verifier: Verifier, scope: Optional[str] = None) -> None:
        self.app, self.verifier, self.scope = app, verifier, scope

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        d = self.verifier.check(request_headers(environ), self.scope)
        if not d.forward:
            body = d.body.encode()
            start_response(f"{d.status} {STATUS_TEXT.get(d.status, '')}".strip(),
                           d.response_headers + [("Content-Type", "text/plain; charset=utf-8"),
                                                 ("Content-Length", str(len(body)))])
            return [body]
        apply(environ, d)
        if not d.response_headers:
            return self.app(environ, start_response)

        def start_with_deprecation(status, headers, exc_info=None):
            return start_response(status, list(headers) + d.response_headers, exc_info)

        return self.app(environ, start_with_deprecation)


STATUS_TEXT = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}
