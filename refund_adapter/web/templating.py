"""Server-rendered pages: one Jinja2 environment per language (aiohttp-jinja2), autoescaped, with the filters every
page shows money and time with. Rendering sets the headers every operator page needs (no caching, no framing,
nothing loaded from elsewhere)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from babel.dates import format_timedelta
from babel.numbers import format_currency, format_percent

from ..config import AdminConfig
from ..money import CURRENCY
from . import labels
from .i18n import LANGUAGE_NAMES, LOCALES, load_translations, request_locale
from .keys import ACCESS

TEMPLATE_DIR: Final = Path(__file__).parent / "templates"
STATIC_DIR: Final = Path(__file__).parent / "static"
ENVIRONMENTS: Final = {locale: web.AppKey(f"jinja2_{locale}", jinja2.Environment) for locale in LOCALES}
HEADERS: Final = web.AppKey("page_headers", dict)  # PAGE_HEADERS as this app sends them

MONEY_LOCALE: Final = "zh_Hans_CN"  # ¥1,234.50 in both languages, as Alipay and the shops show a CNY amount
PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie",
}


def money(amount: Decimal, currency: str = CURRENCY) -> str:
    """`¥1,234.50`: a Decimal amount in its currency (a float is refused: money is never a float here)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money() takes a Decimal, not {type(amount).__name__}")
    return format_currency(amount, currency, locale=MONEY_LOCALE)


def local_time(moment: datetime, zone: ZoneInfo | None) -> str:
    """`2026-12-07 14:33:04 +0800`: an aware datetime in the operator's zone (None: the machine's)."""
    if moment.tzinfo is None:
        raise ValueError("local_time() takes an aware datetime")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %z")


def duration(seconds: float | None, locale: str) -> str:
    """`2 minutes`, `2分钟`: a time span in the page's language (rounded, as an operator reads it); `—` for none."""
    if seconds is None:
        return "—"
    return format_timedelta(seconds, threshold=1.5, locale=locale)


def percent(rate: float | None, locale: str) -> str:
    """`93.5%` in the page's language; `—` when there is no rate yet."""
    return "—" if rate is None else format_percent(rate, "#,##0.0%", locale=locale)


STATIC_PREFIX: Final = "/admin/static/"


def static_files() -> dict[str, Path]:
    """The files under static/ by name: the only ones served (a route each), so what no route takes is our 404."""
    return {path.name: path for path in sorted(STATIC_DIR.iterdir()) if path.is_file()}


def static_url(name: str) -> str:
    """`/admin/static/NAME?v=<hash>`: the hash changes with the file, so a browser never keeps an old copy."""
    digest = hashlib.sha256(static_files()[name].read_bytes()).hexdigest()[:12]
    return f"{STATIC_PREFIX}{name}?v={digest}"


def page_headers(form_targets: Iterable[str]) -> dict[str, str]:
    """PAGE_HEADERS, whose forms may also lead to `form_targets` (origins): the gateways an operator approves a
    password batch at (the Approve form's answer is a redirect there, which a browser holds to `form-action`)."""
    targets = " ".join(sorted(set(form_targets)))
    if not targets:
        return dict(PAGE_HEADERS)
    policy = PAGE_HEADERS["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {targets}")
    return {**PAGE_HEADERS, "Content-Security-Policy": policy}


def setup_templates(app: web.Application, admin: AdminConfig, form_targets: Iterable[str] = ()) -> None:
    """An environment per language, sharing one loader; each has its catalogue installed for `_()`/`{% trans %}`."""
    app[HEADERS] = page_headers(form_targets)
    translations = load_translations()
    static_urls = {name: static_url(name) for name in static_files()}
    loader = jinja2.FileSystemLoader(TEMPLATE_DIR)
    filters = {"money": money, "localtime": functools.partial(local_time, zone=admin.zone)}
    for locale, key in ENVIRONMENTS.items():
        env = aiohttp_jinja2.setup(
            app, app_key=key, loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"], filters=filters,
        )
        env.install_gettext_translations(translations[locale], newstyle=True)  # type: ignore[attr-defined]
        env.globals.update(labels.template_globals(translations[locale].gettext))
        env.filters.update(duration=functools.partial(duration, locale=locale),
                           percent=functools.partial(percent, locale=locale))
        env.globals.update(locale=locale, html_lang=locale.replace("_", "-"), languages=LANGUAGE_NAMES,
                           static=static_urls.__getitem__)


def render(template: str, request: web.Request, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """`template` in the request's language, with `context` plus what the layout needs (session, CSRF token)."""
    locale = request_locale(request)
    layout = {"request_path": request.path_qs, **request.app[ACCESS].page_context(request)}
    response = aiohttp_jinja2.render_template(
        template, request, {**layout, **context}, app_key=ENVIRONMENTS[locale], status=status
    )
    response.headers.update(request.app[HEADERS])
    response.headers["Content-Language"] = locale.replace("_", "-")
    return response
