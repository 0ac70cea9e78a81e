"""The dashboard's Starlette app: sign-in, the pages, the CSV download and the live log stream.

Thin by design: each handler reads its query, calls one function of `reads` as the
signed-in caller, and renders a Jinja2 template. Every page is complete HTML without
JavaScript; htmx (vendored) refreshes the live parts and follows logs over server-sent events.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from minga.common.clock import Clock
from minga.common.domain import (
    InvalidArgument,
    JobState,
    MingaError,
    NotFound,
    PermissionDenied,
    Principal,
    ResourceExhausted,
    Role,
    Unauthenticated,
)
from minga.scheduler.api.ratelimit import Rate, RateLimiter, caller_key
from minga.scheduler.core import Core
from minga.scheduler.store.base import StoreUnavailable
from minga.scheduler.web import chart, logstream, reads
from minga.scheduler.web.format import FILTERS, usage_csv
from minga.scheduler.web.guard import MAX_FORM_BYTES, SecurityHeaders, local_path, same_origin, small_form
from minga.scheduler.web.sessions import COOKIE, WebSessions

HERE = Path(__file__).parent
WINDOWS = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}
GROUPINGS = ("country", "institution", "project")
# Rate limits (token buckets, `api/ratelimit.py`): pages per signed-in caller, and sign-in
# attempts per address, so neither a busy tab nor a token-guessing flood takes the broker.
PAGES_PER_SECOND = 20.0  # bursts of 10 s worth
SIGN_INS_PER_SECOND = 2.0  # bursts of 30 s worth
QUEUE_PAGE = 100
AUDIT_LIMIT = 500
MAX_SEARCH = 200


@dataclass(frozen=True)
class Backend:
    """What the dashboard needs of its broker."""

    core: Callable[[], Core | None]  # None until the broker has started
    refusal: Callable[[], str | None]  # why it serves nothing now (a standby), else None
    authenticate: Callable[[str], Principal | None]  # raises Unauthenticated for an expired token
    clock: Clock
    secure: bool  # served over TLS: the session cookie is Secure


class RefusedError(Exception):
    """This broker serves no pages now (a standby): 503 with the reason."""


def create_app(backend: Backend) -> Starlette:
    """The dashboard over `backend`."""
    web = Dashboard(backend, WebSessions())
    routes = [
        Route("/login", web.login_form, methods=["GET"]),
        Route("/login", web.login, methods=["POST"]),
        Route("/logout", web.logout, methods=["POST"]),
        Route("/", web.page(web.overview)),
        Route("/shares", web.page(web.fair_share)),
        Route("/sites", web.page(web.sites)),
        Route("/queue", web.page(web.queue)),
        Route("/jobs", web.page(web.jobs)),
        Route("/jobs/{job_id}", web.page(web.job)),
        Route("/jobs/{job_id}/logs/events", web.log_events),
        Route("/usage", web.page(web.usage)),
        Route("/usage.csv", web.page(web.usage_csv)),
        Route("/audit", web.page(web.audit)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(SecurityHeaders)], exception_handlers={HTTPException: web.http_error}
    )


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters.update(FILTERS)
    return env


class Dashboard:
    def __init__(self, backend: Backend, sessions: WebSessions) -> None:
        self.backend = backend
        self.sessions = sessions
        self.templates = Jinja2Templates(env=_environment())
        self.pages = RateLimiter(Rate(PAGES_PER_SECOND, 10 * PAGES_PER_SECOND))
        self.sign_ins = RateLimiter(Rate(SIGN_INS_PER_SECOND, 30 * SIGN_INS_PER_SECOND))

    # -- rendering ------------------------------------------------------------------------
    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("caller", None)
        context.update(
            now=self.backend.clock.now(), may_call=reads.may_call, path=request.url.path, csrf=self._csrf(request)
        )
        response = self.templates.TemplateResponse(request, name, context, status_code=status_code)
        response.headers["cache-control"] = "no-store"
        return response

    def error(self, request: Request, status: int, message: str, caller: Principal | None = None) -> Response:
        return self.render(request, "error.html", status, caller=caller, status=status, message=message)

    def too_many(self, request: Request, exc: ResourceExhausted, caller: Principal | None = None) -> Response:
        response = self.error(request, 429, str(exc), caller)
        response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.error(request, exc.status_code, exc.detail)

    # -- who is asking ------------------------------------------------------------------
    def _core(self) -> Core:
        refusal = self.backend.refusal()
        core = self.backend.core()
        if refusal is not None or core is None:
            raise RefusedError(refusal or "the broker is starting")
        return core

    def _caller(self, request: Request) -> Principal | None:
        """The signed-in caller, its token checked again now (revoked or expired: signed out)."""
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid, self.backend.clock.now()) if sid else None
        if session is None:
            return None
        try:
            caller = self.backend.authenticate(session.token)
        except Unauthenticated:
            caller = None
        if caller is None:
            self.sessions.close(sid)
        return caller

    def page(self, view: Callable[[Request, Core, Principal], Response]) -> Callable[[Request], Awaitable[Response]]:
        """`view` for signed-in callers; anyone else is sent to sign in. Errors as pages."""

        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(self._serve, view, request)

        return endpoint

    def _serve(self, view: Callable[[Request, Core, Principal], Response], request: Request) -> Response:
        caller = None
        try:
            core = self._core()
            caller = self._caller(request)
            if caller is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            self.pages.check(caller_key(caller, ""), "this dashboard session")
            return view(request, core, caller)
        except RefusedError as exc:
            return self.error(request, 503, f"This broker serves no pages now: {exc}.")
        except NotFound as exc:
            return self.error(request, 404, str(exc), caller)
        except PermissionDenied as exc:
            return self.error(request, 403, str(exc), caller)
        except InvalidArgument as exc:
            return self.error(request, 400, str(exc), caller)
        except StoreUnavailable as exc:
            return self.error(request, 503, f"The broker's database is unavailable: {exc}", caller)
        except ResourceExhausted as exc:
            return self.too_many(request, exc, caller)
        except MingaError as exc:
            return self.error(request, 400, str(exc), caller)

    # -- signing in and out -----------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        return self.render(request, "login.html", next=local_path(request.query_params.get("next", "/")), problem="")

    async def login(self, request: Request) -> Response:
        if not same_origin(request):
            return self.error(request, 403, "Sign-in refused: the form was not sent from this dashboard.")
        try:
            self.sign_ins.check(f"peer:{request.client.host if request.client else ''}", "sign-in from this address")
        except ResourceExhausted as exc:
            return self.too_many(request, exc)
        form = await small_form(request)
        if form is None:
            return self.error(request, 400, f"Sign-in refused: the form is malformed or over {MAX_FORM_BYTES} bytes.")
        token = form.get("token", "").strip()
        target = local_path(form.get("next", "/"))
        problem = await run_in_threadpool(self._check_token, token)
        if problem:
            return self.render(request, "login.html", 401, next=target, problem=problem)
        sid = self.sessions.open(token, self.backend.clock.now())
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            sid,
            max_age=int(self.sessions.lifetime),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.backend.secure,
        )
        return response

    def _check_token(self, token: str) -> str:
        """Why `token` may not sign in ("" if it may)."""
        if not token:
            return "Paste your minga token (the one `minga login` or your admin gave you)."
        try:
            self._core()
            caller = self.backend.authenticate(token)
        except RefusedError as exc:
            return f"This broker serves no pages now: {exc}."
        except Unauthenticated as exc:
            return f"That token is refused: {exc}."
        if caller is None:
            return "That token is refused: it is unknown or revoked."
        if caller.role is Role.SITE:
            return "That is a site's token: sign in with a person's token."
        return ""

    async def logout(self, request: Request) -> Response:
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid, self.backend.clock.now()) if sid else None
        form = await small_form(request) or {}
        if session is not None and (not same_origin(request) or form.get("csrf") != session.csrf):
            return self.error(request, 403, "Sign-out refused: the form was not sent from this dashboard.")
        self.sessions.close(sid)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=self.backend.secure)
        return response

    def _csrf(self, request: Request) -> str:
        session = self.sessions.get(request.cookies.get(COOKIE, ""), self.backend.clock.now())
        return session.csrf if session else ""

    # -- the views ------------------------------------------------------------------------
    def overview(self, request: Request, core: Core, caller: Principal) -> Response:
        return self.render(request, "overview.html", caller=caller, o=reads.overview(core, caller))

    def fair_share(self, request: Request, core: Core, caller: Principal) -> Response:
        data = reads.fair_share(core, caller)
        history = data.history
        svg = chart.line_chart_svg(
            history.midpoints,
            {country: history.share(country) for country in history.countries},
            title="Each country's share of the GPUs in use, last 24 hours",
            y_label="share of GPUs in use",
            y_max=1.0,
        )
        return self.render(
            request, "shares.html", caller=caller, q=data.quotas, lending=data.lending(), history=history, chart=svg
        )

    def sites(self, request: Request, core: Core, caller: Principal) -> Response:
        return self.render(request, "sites.html", caller=caller, countries=reads.sites(core, caller))

    def queue(self, request: Request, core: Core, caller: Principal) -> Response:
        offset = _int(request, "offset", 0, 0, 10**9)
        view = reads.queue(core, caller, offset, QUEUE_PAGE)
        return self.render(request, "queue.html", caller=caller, view=view, page=QUEUE_PAGE)

    def jobs(self, request: Request, core: Core, caller: Principal) -> Response:
        state_name = request.query_params.get("state", "")
        try:
            state = JobState(state_name) if state_name else None
        except ValueError:
            raise InvalidArgument(
                f"state {state_name[:40]!r} is not one of {', '.join(s.value for s in JobState)}"
            ) from None
        search = request.query_params.get("q", "")
        if len(search) > MAX_SEARCH:
            raise InvalidArgument(f"the search is longer than {MAX_SEARCH} characters")
        found = reads.job_list(core, caller, state, search)
        return self.render(
            request, "jobs.html", caller=caller, jobs=found, state=state_name, q=search, states=list(JobState),
            limit=reads.MAX_JOBS_LISTED,
        )  # fmt: skip

    def job(self, request: Request, core: Core, caller: Principal) -> Response:
        page = reads.job_page(core, caller, request.path_params["job_id"])
        return self.render(request, "job.html", caller=caller, p=page, job=page.job)

    def _usage_report(self, request: Request, core: Core, caller: Principal) -> tuple[Any, str, str]:
        window = request.query_params.get("since", "30d")
        by = request.query_params.get("by", "country")
        if window not in WINDOWS:
            raise InvalidArgument(f"since {window[:20]!r} is not one of {', '.join(WINDOWS)}")
        if by not in GROUPINGS:
            raise InvalidArgument(f"by {by[:20]!r} is not one of {', '.join(GROUPINGS)}")
        return reads.usage(core, caller, WINDOWS[window], by), window, by

    def usage(self, request: Request, core: Core, caller: Principal) -> Response:
        report, window, by = self._usage_report(request, core, caller)
        return self.render(
            request, "usage.html", caller=caller, report=report, window=window, by=by, windows=WINDOWS,
            groupings=GROUPINGS,
        )  # fmt: skip

    def usage_csv(self, request: Request, core: Core, caller: Principal) -> Response:
        report, window, by = self._usage_report(request, core, caller)
        name = f"minga-usage-by-{by}-{window}.csv"
        return PlainTextResponse(
            usage_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"},
        )

    def audit(self, request: Request, core: Core, caller: Principal) -> Response:
        window = request.query_params.get("since", "7d")
        if window not in WINDOWS:
            raise InvalidArgument(f"since {window[:20]!r} is not one of {', '.join(WINDOWS)}")
        preemptions = request.query_params.get("preemptions", "") == "1"
        since = self.backend.clock.now() - WINDOWS[window]
        lines = reads.audit(core, caller, since, preemptions, AUDIT_LIMIT)
        return self.render(
            request, "audit.html", caller=caller, lines=lines, window=window, windows=WINDOWS, preemptions=preemptions,
            limit=AUDIT_LIMIT,
        )  # fmt: skip

    # -- live logs ------------------------------------------------------------------------
    async def log_events(self, request: Request) -> Response:
        """The job's log from where its page left off, as server-sent events (`logstream.py`)."""
        job_id = request.path_params["job_id"]
        try:
            run, offset = logstream.resume_point(request)
            core = self._core()
            caller = await run_in_threadpool(self._caller, request)
            if caller is None:
                return PlainTextResponse("sign in first", status_code=401)
            await run_in_threadpool(reads.check_logs, core, caller, job_id)
        except RefusedError as exc:
            return PlainTextResponse(str(exc), status_code=503)
        except NotFound as exc:
            return PlainTextResponse(str(exc), status_code=404)
        except (PermissionDenied, InvalidArgument) as exc:
            return PlainTextResponse(str(exc), status_code=400 if isinstance(exc, InvalidArgument) else 403)
        return StreamingResponse(
            logstream.follow(request, core, caller, job_id, run, offset),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name, "")
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidArgument(f"{name} must be a whole number from {low} to {high}")
    return int(text)
