"""A FastAPI dependency: the key checked per route, the `Verdict` handed to
the endpoint.

    from keygate.fastapi import require
    invoices = require(verifier, "invoices:read")

    @app.get("/invoices/{id}")
    def invoice(id: int, key: Verdict = Depends(invoices)):
        return {"principal": key.principal}

A refused request raises `HTTPException` with the contract's status and
headers (`WWW-Authenticate`, `Retry-After`); a rotated key's response gets
Deprecation/Sunset.
"""
from typing import Awaitable, Callable, Optional

from fastapi import HTTPException, Request, Response

from ._keygate import Verdict, Verifier


def require(verifier: Verifier, scope: Optional[str] = None) -> Callable[[Request, Response], Awaitable[Verdict]]:
    async def keygate(request: Request, response: Response) -> Verdict:
        d = verifier.check(request.scope["headers"], scope)
        if not d.forward:
            raise HTTPException(status_code=d.status, detail=d.body, headers=dict(d.response_headers))
        for name, value in d.response_headers:
            response.headers[name] = value
        assert d.verdict is not None
        return d.verdict

    return keygate
