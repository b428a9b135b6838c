"""Django middleware. In settings.py:

    KEYGATE_DIR = "/srv/keygate"          # or KEYGATE_VERIFIER = a keygate.Verifier
    KEYGATE_SCOPE = "invoices:read"       # optional
    MIDDLEWARE = ["keygate.django.KeygateMiddleware", ...]

Refused requests are answered by the gateway contract (401/403 with an RFC
6750 challenge, 400, 503 with Retry-After); a forwarded request reaches the
view without its key headers, with `request.keygate` holding the `Verdict`
and the principal header set; a rotated key's response gets
Deprecation/Sunset.
"""
from django.conf import settings
from django.http import HttpResponse

from ._keygate import Verifier
from .wsgi import apply, request_headers


class KeygateMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.verifier = getattr(settings, "KEYGATE_VERIFIER", None) or Verifier.from_dir(settings.KEYGATE_DIR)
        self.scope = getattr(settings, "KEYGATE_SCOPE", None)

    def __call__(self, request):
        d = self.verifier.check(request_headers(request.META), self.scope)
        if not d.forward:
            r = HttpResponse(d.body, status=d.status, content_type="text/plain; charset=utf-8")
            for name, value in d.response_headers:
                r[name] = value
            return r
        apply(request.META, d)
        # request.headers is read from META once; a middleware before this
        # one may have read it already.
        request.__dict__.pop("headers", None)
        request.keygate = d.verdict
        response = self.get_response(request)
        for name, value in d.response_headers:
            response[name] = value
        return response
