"""The applications the Python test serves with uvicorn: a FastAPI app with
the dependency, and a Starlette app behind the ASGI middleware. The publish
directory comes from KEYGATE_PUB."""
import os

from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from keygate import Verdict, Verifier
from keygate.asgi import KeygateMiddleware
from keygate.fastapi import require

verifier = Verifier.from_dir(os.environ["KEYGATE_PUB"])

fastapi_app = FastAPI()
invoices = require(verifier, "invoices:read")


@fastapi_app.get("/invoices/{id}")
def invoice(id: int, key: Verdict = Depends(invoices)):
    return {"invoice": id, "principal": key.principal, "outcome": key.outcome, "scopes": key.scopes}


@fastapi_app.get("/metrics", response_class=PlainTextResponse)
def metrics():
    return verifier.metrics()


async def starlette_invoice(request: Request):
    key = request.state.keygate
    seen = "set" if "authorization" in request.headers or "x-api-key" in request.headers else "-"
    return PlainTextResponse(f"principal={request.headers.get('x-keygate-principal', '-')} auth={seen} "
                             f"verdict={key.principal}\n")


starlette_app = KeygateMiddleware(Starlette(routes=[Route("/invoices/{id}", starlette_invoice)]),
                                  verifier, scope="invoices:read")
