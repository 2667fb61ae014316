"""The dashboard's routes under `/admin/`: login, logout, the language switch, its static files and its pages.
Served only when `server.admin_token` is set (otherwise none of this exists and `/admin/` is a 404).

A page is `router.add_get(path, access.page(handler))` whose handler returns `render("admin/x.html", request,
{...})` (a template extending base.html); a form that changes something posts to `access.action(handler)` and
carries `<input type="hidden" name="csrf_token" value="{{ csrf_token }}">`. Visible text goes through `_()`, then
`pybabel extract -F babel.cfg` / `pybabel update` and a translation in zh_Hans (tests/test_translations.py fails
otherwise); amounts through the `money` filter, times through `localtime`.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from aiohttp import web

from . import pages
from .access import (
    COOKIE_PATH,
    CSRF_FIELD,
    HOME,
    LOGIN,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    constant_time_equal,
    csrf_refused,
    keeps_secure_cookies,
    safe_next,
)
from .i18n import LANGUAGE_COOKIE, LOCALES
from .keys import ACCESS
from .problems import Handler, expect_continue, read_form
from .templating import STATIC_PREFIX, render, static_files

log = logging.getLogger(__name__)

LANGUAGE_COOKIE_SECONDS = 365 * 86400


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, status=200, refused=False)


def _login_page(request: web.Request, *, status: int, refused: bool) -> web.Response:
    """The form, with a fresh double-submit token in a cookie and in the form (the login's CSRF check)."""
    token = secrets.token_urlsafe(24)
    response = render("admin/login.html", request,
                      {"login_csrf": token, "next": safe_next(request.query.get("next")), "refused": refused,
                       "cookie_dropped": not keeps_secure_cookies(request)},
                      status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path=LOGIN, secure=True, httponly=True, samesite="Strict")
    return response


async def login(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    form = await read_form(request)
    given_csrf, expected_csrf = form.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE)
    if not (given_csrf is not None and expected_csrf and constant_time_equal(given_csrf, expected_csrf)):
        return csrf_refused()
    token = form.get("token")
    client = request.remote or "unknown"
    if not (token is not None and access.token_matches(token)):
        await access.refuse_login(request)
        return _login_page(request, status=401, refused=True)
    access.throttle.succeed(client)
    log.info("admin login from %s", client)
    response = web.HTTPSeeOther(safe_next(form.get("next")))
    access.set_session(response)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=LOGIN)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther(LOGIN)
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise response


async def switch_language(request: web.Request) -> web.StreamResponse:
    """`/admin/language/zh_Hans?next=...`: remember the choice in a cookie and go back to the page."""
    locale = request.match_info["locale"]
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    response.set_cookie(LANGUAGE_COOKIE, locale, max_age=LANGUAGE_COOKIE_SECONDS, path=COOKIE_PATH,
                        secure=True, httponly=True, samesite="Strict")
    raise response


async def _to_home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(HOME)


def _static_file(path: Path) -> Handler:
    async def send(request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable",
                                               "X-Content-Type-Options": "nosniff"})

    return send


def add_routes(app: web.Application, access: Access) -> None:
    """Login, logout and the language switch are open (the login page needs them); every page needs a session."""
    router, options = app.router, {"expect_handler": expect_continue}
    for name, path in static_files().items():
        router.add_get(STATIC_PREFIX + name, _static_file(path), **options)
    router.add_get(LOGIN, login_form, **options)
    router.add_post(LOGIN, login, **options)
    router.add_post("/admin/logout", access.action(logout), **options)
    router.add_get(f"/admin/language/{{locale:{'|'.join(LOCALES)}}}", switch_language, **options)
    pages.add_routes(app, access)
    router.add_get("/admin", _to_home, **options)
