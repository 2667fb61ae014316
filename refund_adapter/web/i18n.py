"""The dashboard's languages: gettext catalogues (Babel) compiled from the `.po` files when the app starts, and the
choice of language for a request (the `lang` cookie the page's switch sets, else `Accept-Language`, else English).

The `.po` files are the only form kept in the repository: compiling them at start-up takes milliseconds and means
a checkout installed with `pip install -e .` can never serve a stale `.mo`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from aiohttp import web
from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR: Final = Path(__file__).parent / "locale"
DOMAIN: Final = "messages"
DEFAULT_LOCALE: Final = "en"
LOCALES: Final = ("en", "zh_Hans")  # the order of the page's language switch
LANGUAGE_NAMES: Final = {"en": "English", "zh_Hans": "简体中文"}  # each in its own language: never translated
LANGUAGE_COOKIE: Final = "lang"


def N_(message: str) -> str:
    """Marks a string in Python code for the catalogues; the template translates it when it shows it."""
    return message


def catalogue_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_translations() -> Mapping[str, Translations]:
    """Every locale's catalogue, compiled in memory from its `.po` file."""
    result = {}
    for locale in LOCALES:
        with catalogue_path(locale).open("rb") as po:
            catalog = read_po(po, locale=locale, domain=DOMAIN)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        result[locale] = Translations(compiled, domain=DOMAIN)
    return result


def _supported(tag: str) -> str | None:
    """Our locale for a language tag (`zh-CN`, `zh-Hans`, `zh`, `en-GB`), or None (`zh-TW` is Traditional)."""
    try:
        locale = Locale.parse(tag.strip().replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    if locale.language == "en":
        return "en"
    if locale.language == "zh" and locale.script in (None, "Hans"):
        return "zh_Hans"
    return None


def _accept_language(header: str) -> list[str]:
    """The header's tags, most preferred first (RFC 9110 §12.5.4: `q` weights, 1 when absent, 0 = not wanted)."""
    weighted = []
    for position, item in enumerate(header.split(",")[:20]):  # a bounded header: at most 20 tags are looked at
        tag, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag.strip() and tag.strip() != "*" and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def request_locale(request: web.Request) -> str:
    """The language of the page for this request: the switch's cookie, else the browser's preference, else English."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LOCALES:
        return chosen
    for tag in _accept_language(request.headers.get("Accept-Language", "")):
        if (locale := _supported(tag)) is not None:
            return locale
    return DEFAULT_LOCALE
