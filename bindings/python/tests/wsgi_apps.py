"""The WSGI applications the Python test serves with gunicorn: Flask behind
the WSGI middleware, and Django with the Django middleware. KEYGATE_PUB is
the publish directory."""
import os

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path
from flask import Flask, request

from keygate import Verifier
from keygate.wsgi import KeygateMiddleware

verifier = Verifier.from_dir(os.environ["KEYGATE_PUB"])


def seen(headers, verdict):
    auth = "set" if "authorization" in headers or "x-api-key" in headers else "-"
    return f"principal={headers.get('x-keygate-principal', '-')} auth={auth} verdict={verdict.principal}\n"


flask_app = Flask(__name__)


@flask_app.get("/invoices/<int:id>")
def flask_invoice(id):
    return seen({k.lower(): v for k, v in request.headers.items()}, request.environ["keygate.verdict"])


flask_app.wsgi_app = KeygateMiddleware(flask_app.wsgi_app, verifier, scope="invoices:read")


def django_invoice(req, id):
    return HttpResponse(seen({k.lower(): v for k, v in req.headers.items()}, req.keygate),
                        content_type="text/plain")


urlpatterns = [path("invoices/<int:id>", django_invoice)]
settings.configure(
    DEBUG=False, SECRET_KEY="keygate-test-only", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
    MIDDLEWARE=["keygate.django.KeygateMiddleware"], KEYGATE_VERIFIER=verifier, KEYGATE_SCOPE="invoices:read",
)
django.setup()
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_app = get_wsgi_application()
