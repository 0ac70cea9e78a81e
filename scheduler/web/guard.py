"""What keeps the dashboard's pages to themselves: security headers on every response, and
the checks that a form came from the dashboard and a redirect stays on it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_FORM_BYTES = 16 * 1024  # a sign-in form holds one token: anything bigger is refused unread
MAX_FORM_FIELDS = 10

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" would make forms send Origin: null
    (b"x-frame-options", b"DENY"),
]  # fmt: skip


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (pure ASGI, so streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def local_path(target: str) -> str:
    """Only a path of this dashboard: a sign-in link cannot send anyone elsewhere."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def same_origin(request: Request) -> bool:
    """A form posted from this dashboard: its Origin (when the browser sends one) is ours."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def small_form(request: Request) -> dict[str, str] | None:
    """A sign-in or sign-out form (urlencoded), read up to MAX_FORM_BYTES; None if bigger or
    malformed, so a huge body costs the broker no more than that."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}
