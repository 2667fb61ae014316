"""Who may see the operator's pages: the admin token, given once at `/admin/login`, becomes a signed, expiring
session cookie; every state-changing form carries a CSRF token bound to that session.

Sessions are stateless (an HMAC over an expiry and a nonce, keyed by a key derived from the admin token), so
every instance behind a load balancer accepts them, a restart keeps them and changing the token ends them all.
Checks are per-route wrappers rather than a middleware, which would cost every webhook (see problems.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web
from yarl import URL

from .problems import Handler, problem, read_form

log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "ra_session"
LOGIN_CSRF_COOKIE: Final = "ra_login_csrf"  # the login form's double-submit token: there is no session yet
CSRF_FIELD: Final = "csrf_token"
SESSION_SECONDS: Final = 8 * 3600  # a working day; then the operator logs in again
COOKIE_PATH: Final = "/admin"
HOME: Final = "/admin/"
LOGIN: Final = "/admin/login"
MAX_NEXT_LENGTH: Final = 2000
SESSION_KEY_INFO: Final = b"refund-adapter admin session v1"


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of the dashboard, never another site (`//evil`, `/\\evil`, `https:`)."""
    if not target or len(target) > MAX_NEXT_LENGTH or "\\" in target or "//" in target:
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not (parts.path == "/admin" or parts.path.startswith(HOME)):
        return HOME
    return target


def _digest(text: str) -> bytes:
    # surrogateescape: a header that is not UTF-8 is compared as the bytes sent (and does not match)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def session_key(token: str) -> bytes:
    """The sessions' MAC key: HKDF-SHA256 (RFC 5869) of the admin token, no salt, 32 bytes, which is one HMAC to
    extract and one to expand. The standard library's: the web process then loads no cryptography (about 9 MB;
    docs/performance.md)."""
    pseudorandom = hmac.digest(bytes(hashlib.sha256().digest_size), token.encode(), "sha256")  # salt: zeros
    return hmac.digest(pseudorandom, SESSION_KEY_INFO + b"\x01", "sha256")  # the first block is all 32 bytes


def constant_time_equal(given: str, expected: str) -> bool:
    """Constant-time comparison that does not even leak the length (both sides hashed first)."""
    return hmac.compare_digest(_digest(given), _digest(expected))


def admin_only(handler: Handler, token: str) -> Handler:
    """`handler`, needing `Authorization: Bearer <token>` (the operator's JSON endpoints). A session cookie is not
    enough here: a page of another site could make the browser send it."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if not (constant_time_equal(given.strip(), token) and scheme.lower() == "bearer"):
            return problem(401, "admin-token-required", "this endpoint needs Authorization: Bearer <token>",
                           headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return guarded


def keeps_secure_cookies(request: web.Request) -> bool:
    """Whether a browser will keep our `Secure` session cookie from this page: over HTTPS (here, or at a proxy
    that says so), or from a loopback host, which browsers count as a secure origin even over plain http."""
    if request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https":
        return True
    try:
        host = request.url.host or ""
    except ValueError:  # a Host header that is no host
        return False
    return host == "localhost" or host.endswith(".localhost") or _is_loopback(host)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def csrf_refused() -> web.Response:
    return problem(403, "csrf-token-invalid", "the form's CSRF token is missing or wrong: reload the page")


class LoginThrottle:
    """Slows down a client that keeps giving a wrong token: its n-th failure in a row is answered after
    `base * 2**(n-1)` seconds (at most `cap`), by an `asyncio.sleep` that blocks nobody else. A success, or
    `forget_after` seconds without a failure, clears the count. At most `max_clients` are remembered."""

    def __init__(self, *, base: float = 0.25, cap: float = 8.0, forget_after: float = 900.0,
                 max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.base, self.cap, self.forget_after = base, cap, forget_after
        self.max_clients, self.clock = max_clients, clock
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def failures(self, client: str) -> int:
        count, last = self._failures.get(client, (0, 0.0))
        return count if self.clock() - last < self.forget_after else 0

    def fail(self, client: str) -> float:
        """Count a failure; returns how long to wait before answering it."""
        count = self.failures(client) + 1
        self._failures[client] = (count, self.clock())
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)
        return min(self.base * 2 ** (count - 1), self.cap)

    def succeed(self, client: str) -> None:
        self._failures.pop(client, None)


class Access:
    """The admin token's checks: the login session and its CSRF token for pages, Bearer for the JSON API."""

    def __init__(self, token: str, *, clock: Callable[[], float] = time.time,
                 throttle: LoginThrottle | None = None) -> None:
        self._token = token
        self._key = session_key(token)
        self.clock = clock
        self.throttle = throttle or LoginThrottle()

    # --- tokens ------------------------------------------------------------------------------------------

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        return constant_time_equal(given, self._token)

    def new_session(self) -> str:
        body = f"{int(self.clock()) + SESSION_SECONDS}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac('session', body)}"

    def session(self, request: web.Request) -> str | None:
        """The request's session cookie when it is ours and not expired, else None."""
        value = request.cookies.get(SESSION_COOKIE, "")
        body, _, mac = value.rpartition(".")
        expires, _, _nonce = body.partition(".")
        well_formed = mac and expires.isascii() and expires.isdigit()
        if not (well_formed and constant_time_equal(mac, self._mac("session", body))):
            return None
        return value if int(expires) > self.clock() else None

    def csrf_token(self, session: str) -> str:
        """The CSRF token of a session: forms carry it, and only a page of this session can have read it."""
        return self._mac("csrf", session)

    # --- wrappers for routes -------------------------------------------------------------------------------

    def page(self, handler: Handler) -> Handler:
        """A dashboard page: without a valid session, a redirect to the login page that comes back here."""

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.session(request) is None:
                raise web.HTTPSeeOther(URL(LOGIN).with_query(next=safe_next(request.path_qs)))
            return await handler(request)

        return guarded

    def action(self, handler: Handler) -> Handler:
        """A dashboard form's POST: a valid session and its CSRF token, or a 403 problem and nothing done."""

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = self.session(request)
            if session is None:
                return problem(403, "session-required", "log in at /admin/login first")
            given = (await read_form(request)).get(CSRF_FIELD)
            if given is None or not constant_time_equal(given, self.csrf_token(session)):
                return csrf_refused()
            return await handler(request)

        return guarded

    def page_context(self, request: web.Request) -> dict[str, Any]:
        """What the layout shows: whether someone is logged in, and the CSRF token its forms carry."""
        session = self.session(request)
        return {"signed_in": session is not None, "csrf_token": self.csrf_token(session) if session else ""}

    # --- login and logout ------------------------------------------------------------------------------------

    def set_session(self, response: web.StreamResponse) -> None:
        response.set_cookie(SESSION_COOKIE, self.new_session(), max_age=SESSION_SECONDS, path=COOKIE_PATH,
                            secure=True, httponly=True, samesite="Strict")

    async def refuse_login(self, request: web.Request) -> float:
        """Log a failed login (who, never what was typed) and wait as the throttle says before answering."""
        client = request.remote or "unknown"
        delay = self.throttle.fail(client)
        log.warning("admin login refused for %s (%d failures in a row; answered after %.2f s)",
                    client, self.throttle.failures(client), delay)
        await asyncio.sleep(delay)
        return delay
