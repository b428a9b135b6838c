"""keygate: in-process API-key verification against a signed keyset
published by `keygate publish`.

    from keygate import Verifier
    v = Verifier.from_dir("/srv/keygate")     # trust pinned now, reloaded every second
    r = v.verify(key, scope="invoices:read")  # the GIL is released meanwhile
    r.outcome, r.principal                    # "valid", "billing-service"

Middleware: `keygate.asgi.KeygateMiddleware` (Starlette and any ASGI app)
and `keygate.fastapi.require` (a FastAPI dependency)."""
from ._keygate import Decision, Verdict, Verifier

__all__ = ["Decision", "Verdict", "Verifier"]
