"""The benchmark's four apps: the same hello-world endpoint in FastAPI and in
Starlette, each without auth and with keygate (the FastAPI dependency, the
ASGI middleware), and FastAPI with a dependency of the same signature as
keygate's that checks nothing: what FastAPI's dependency machinery costs by
itself. KEYGATE_PUB is the publish directory."""
import os

from fastapi import Depends, FastAPI, Request, Response
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from keygate import Verdict, Verifier
from keygate.asgi import KeygateMiddleware
from keygate.fastapi import require

verifier = Verifier.from_dir(os.environ["KEYGATE_PUB"])
need = require(verifier, "invoices:read")

fastapi_plain = FastAPI()
fastapi_keygate = FastAPI()
fastapi_emptydep = FastAPI()


async def nothing(request: Request, response: Response) -> None:
    return None


@fastapi_plain.get("/hello")
def hello_plain():
    return PlainTextResponse("hello\n")


@fastapi_keygate.get("/hello")
def hello_keygate(key: Verdict = Depends(need)):
    return PlainTextResponse("hello\n")


@fastapi_emptydep.get("/hello")
def hello_emptydep(key: None = Depends(nothing)):
    return PlainTextResponse("hello\n")


async def hello(request):
    return PlainTextResponse("hello\n")


starlette_plain = Starlette(routes=[Route("/hello", hello)])
starlette_keygate = KeygateMiddleware(Starlette(routes=[Route("/hello", hello)]), verifier, scope="invoices:read")
