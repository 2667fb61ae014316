"""`refund-adapter new-plugin NAME`: write a pip-installable platform plugin that passes the testing kit.

The files come from `plugin_template/` (package data, one place): each `*.tmpl` is a `string.Template`, its path
as well as its text, in which `$name`, `$module`, `$distribution`, `$title`, `$camel` and `$core_version` are
filled in (`$module/adapter.py.tmpl` becomes `refund_adapter_acme/adapter.py`). Pure file work, no network: what
it writes is the starting point of docs/writing_plugins.md.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

TEMPLATE_SUFFIX = ".tmpl"
# The platform's name is part of URLs (/webhooks/NAME/...), YAML keys (platforms.NAME) and a module name.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class ScaffoldError(Exception):
    """A plugin cannot be written as asked (bad name, taken name, directory in the way): nothing was written."""


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of one plugin's name that its files use."""

    name: str  # the platform and entry-point name: acme_pay
    module: str  # refund_adapter_acme_pay
    distribution: str  # refund-adapter-acme-pay
    title: str  # Acme Pay
    camel: str  # AcmePay, the prefix of its classes

    @classmethod
    def of(cls, name: str) -> PluginNames:
        words = name.split("_")
        return cls(
            name=name,
            module=f"refund_adapter_{name}",
            distribution=f"refund-adapter-{name.replace('_', '-')}",
            title=" ".join(word.capitalize() for word in words),
            camel="".join(word.capitalize() for word in words),
        )


def check_name(name: str, taken: Collection[str] = ()) -> PluginNames:
    """The names of a new plugin `name`, or `ScaffoldError` saying what a plugin name must be."""
    if not _NAME.fullmatch(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"{name!r} is not a plugin name: use 1-32 lowercase letters, digits and single underscores, starting"
            " with a letter (it names the platform in URLs, in platforms.NAME and in the module refund_adapter_NAME)"
        )
    if name in taken:
        raise ScaffoldError(f"a plugin named {name!r} is already installed: choose another name")
    return PluginNames.of(name)


def check_target(directory: Path) -> None:
    """`ScaffoldError` unless `directory` is absent or an empty directory: never overwrite someone's files."""
    if directory.is_dir():
        if any(directory.iterdir()):
            raise ScaffoldError(f"{directory} already exists and is not empty: name a new or empty directory")
    elif directory.exists():
        raise ScaffoldError(f"{directory} exists and is not a directory")


def render(names: PluginNames, core_version: str) -> dict[Path, str]:
    """Every file of the new plugin, by its path relative to the plugin's directory."""
    values: Mapping[str, str] = {**vars(names), "core_version": core_version}
    return {
        Path(*(Template(part).substitute(values) for part in relative)): Template(
            source.read_text(encoding="utf-8")
        ).substitute(values)
        for relative, source in _templates(resources.files(__package__) / "plugin_template", ())
    }


def _templates(folder: Traversable, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Traversable]]:
    """(relative path without the suffix, file) of each template under `folder`, in a stable order."""
    found: list[tuple[tuple[str, ...], Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.is_dir():
            found += _templates(entry, (*prefix, entry.name))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            found.append(((*prefix, entry.name.removesuffix(TEMPLATE_SUFFIX)), entry))
    return found


def write_plugin(names: PluginNames, directory: Path) -> list[Path]:
    """Write the plugin `names` (from `check_name`) into `directory`, absent or empty; the paths written."""
    check_target(directory)
    files = render(names, metadata.version("refund-adapter"))
    written = []
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
