"""The one error of a configuration that cannot be used, in a module of its own: plugins raise it from their
settings validation (through `refund_adapter.plugin_api`) without importing the configuration's loader."""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason, one `path: message` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
