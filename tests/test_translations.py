"""Every string the dashboard shows has a Chinese translation, and no template shows text that is not marked
for translation. Messages are extracted the way `pybabel extract -F babel.cfg` does, from the files themselves,
so a new `_()` without its `msgstr` fails here rather than showing English on a Chinese page."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import nodes

from refund_adapter.web.i18n import LOCALES, catalogue_path
from refund_adapter.web.templating import TEMPLATE_DIR

ROOT = Path(__file__).resolve().parent.parent
UNTRANSLATED_OK = {"refund-adapter"}  # the product's name
VISIBLE_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "value"}


def extracted_messages() -> set[str]:
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    messages = set()
    for _file, _line, message, _comments, _context in extract_from_dir(ROOT, method_map, options_map):
        messages.update([message] if isinstance(message, str) else [m for m in message if m])
    return messages


def catalogue(locale: str) -> dict[str, str]:
    with catalogue_path(locale).open("rb") as po:
        return {m.id: m.string for m in read_po(po) if m.id and not m.fuzzy}


def test_messages_are_extracted_from_templates_and_code() -> None:
    assert {"Log in", "Admin token", "Overview"} <= extracted_messages()


@pytest.mark.parametrize("locale", [loc for loc in LOCALES if loc != "en"])
def test_every_message_has_a_translation(locale: str) -> None:
    translations = catalogue(locale)
    missing = sorted(m for m in extracted_messages() if not translations.get(m))
    assert missing == [], f"add these to {catalogue_path(locale)} (pybabel update, then translate)"


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogues_hold_no_stale_messages(locale: str) -> None:
    assert sorted(set(catalogue(locale)) - extracted_messages()) == []


class _VisibleText(HTMLParser):
    """The words a reader sees in a piece of HTML: text between tags and visible attribute values."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input" and dict(attrs).get("type") == "hidden":
            return
        self.words.extend(value for name, value in attrs if name in VISIBLE_ATTRIBUTES and value)

    def handle_data(self, data: str) -> None:
        self.words.append(data)


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATE_DIR).as_posix()
                                            for p in TEMPLATE_DIR.rglob("*.html")))
def test_templates_show_no_text_outside_gettext(template: str) -> None:
    """Literal text in a template (not inside `_()` or `{% trans %}`) would show in English on every page."""
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    tree = env.parse((TEMPLATE_DIR / template).read_text(encoding="utf-8"))
    html = "\0".join(node.data for node in tree.find_all(nodes.TemplateData))  # \0 marks where an expression was
    parser = _VisibleText()
    parser.feed(html)
    words = [w.strip(" \n·") for text in parser.words for w in text.split("\0")]
    assert [w for w in words if any(c.isalpha() for c in w) and w not in UNTRANSLATED_OK] == []
