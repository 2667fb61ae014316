"""YAML configuration -> typed, frozen settings.

`${VAR}` / `${VAR:-default}` are replaced inside string scalars *after* YAML parsing, so an environment value
can never break the document's structure; `$${` writes a literal `${`. Validation collects every problem, each
prefixed by its dotted path (`alipay.accounts.main.md5_key: missing`), so one run of `check-config` shows the
operator everything to fix. Keys and PEM texts are held in `Secret`, which never prints its value.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from refund_adapter.channels.openapi.keys import KeyProblem, load_signer
from refund_adapter.channels.openapi.signing import SIGN_TYPES
from refund_adapter.channels.signing import SUPPORTED_SIGN_TYPES
from refund_adapter.config_error import ConfigError

T = TypeVar("T")
log = logging.getLogger(__name__)

INPUT_CHARSETS: Final = ("utf-8", "gbk", "gb2312")
STORE_SCHEMES: Final = ("sqlite:///", "postgresql://", "postgres://")
DEFAULT_GATEWAY_URL: Final = "https://mapi.alipay.com/gateway.do"
DEFAULT_OPENAPI_GATEWAY_URL: Final = "https://openapi.alipay.com/gateway.do"
MAX_BATCH_DETAILS: Final = 1000  # MAPI's limit on detail_data entries per batch_no
LOG_FORMATS: Final = ("text", "json")  # logging.format (refund_adapter/logs.py)
# How an account's refunds reach Alipay (alipay.accounts.<name>.channel): `mapi`, the no-password batch (a contract
# of its own); `mapi_pwd`, the password batch an operator approves from the dashboard (every merchant has it); or
# `openapi`, an open-platform app's alipay.trade.refund, one call per refund.
CHANNELS: Final = ("mapi", "mapi_pwd", "openapi")
MAPI_CHANNELS: Final = ("mapi", "mapi_pwd")  # the channels of an AlipayAccount (a MAPI partner)


class Secret:
    """A key or PEM text that must never reach a log: repr/str show `***`; `reveal()` is the only way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that signs or verifies with it."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Where the HTTP service listens and the public address Alipay posts notifies to."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str
    max_body_bytes: int = 1_048_576
    # Unset: the dashboard, /-/... and /metrics are not served. Set: they need it (a session or a Bearer header).
    admin_token: Secret | None = None
    uvloop: bool = True  # run on uvloop where it is installed (refund_adapter/event_loop.py)


@dataclass(frozen=True)
class StoreConfig:
    """Durable state: `sqlite:///<path>` (or `sqlite:///:memory:`) or `postgresql://...`."""

    url: str = "sqlite:///var/lib/refund-adapter/refunds.db"


@dataclass(frozen=True)
class AlipayAccount:
    """One Alipay partner (PID) and the credentials that sign its MAPI calls."""

    name: str
    partner: str
    sign_type: str
    md5_key: Secret | None = None
    private_key_file: Path | None = None
    alipay_public_key_file: Path | None = None
    private_key_pem: Secret | None = None
    alipay_public_key_pem: Secret | None = None
    gateway_url: str = DEFAULT_GATEWAY_URL
    input_charset: str = "utf-8"
    use_freeze_amount: bool = False
    channel: str = "mapi"  # one of MAPI_CHANNELS
    seller_user_id: str | None = None  # mapi_pwd: the account refunds are paid from (one of the two is required)
    seller_email: str | None = None

    @property
    def approved_by_operator(self) -> bool:
        """Whether each batch waits for an operator to confirm it at Alipay (`mapi_pwd`)."""
        return self.channel == "mapi_pwd"


@dataclass(frozen=True)
class OpenApiAccount:
    """One Alipay open-platform app (app_id) and the RSA2 (or RSA) keys that sign its `alipay.trade.refund` calls.

    The PEM texts come from the file (`*_file`) or the value itself (`private_key: "${ALIPAY_APP_KEY}"`)."""

    name: str
    app_id: str
    private_key: Secret | None = None
    private_key_file: Path | None = None
    alipay_public_key: Secret | None = None
    alipay_public_key_file: Path | None = None
    sign_type: str = "RSA2"
    gateway_url: str = DEFAULT_OPENAPI_GATEWAY_URL
    app_auth_token: Secret | None = None  # a service provider's token to act for the merchant
    max_concurrency: int = 4  # calls in flight at once for this account
    channel: str = "openapi"

    @property
    def approved_by_operator(self) -> bool:
        """OpenAPI refunds need no operator: each call is final."""
        return False

    @property
    def input_charset(self) -> str:
        """OpenAPI requests are always UTF-8 (JSON in biz_content)."""
        return "utf-8"


Account = AlipayAccount | OpenApiAccount


@dataclass(frozen=True)
class AlipayConfig:
    """All Alipay accounts by name; platforms pick one by that name."""

    accounts: Mapping[str, Account]


@dataclass(frozen=True)
class ApprovalConfig:
    """Batches of `mapi_pwd` accounts wait for an operator: who is reminded when one waits too long."""

    reminder_after_seconds: float = 3600
    reminder_url: str | None = None  # POSTed a JSON summary of what waits (none: the dashboard and metrics only)


@dataclass(frozen=True)
class BatchingConfig:
    """A batch is submitted when it is full or its oldest refund has waited long enough."""

    max_details: int = MAX_BATCH_DETAILS
    max_wait_seconds: float = 2


@dataclass(frozen=True)
class ReporterConfig:
    """Exponential backoff for reporting results back to platforms, and when to stop trying."""

    base_delay_seconds: float = 5
    max_delay_seconds: float = 3600
    give_up_after_seconds: float = 86400


@dataclass(frozen=True)
class AlipayQueryConfig:
    """The Alipay query loop: when to ask Alipay about a batch whose notify has not arrived (seconds after
    submission), and how often to look for batches that are due."""

    first_query_after_seconds: float = 300
    schedule_seconds: tuple[float, ...] = (300, 900, 3600, 10800, 21600, 43200, 86400)
    interval_seconds: float = 30


@dataclass(frozen=True)
class PlatformPollConfig:
    """The platform poll loop: how often each platform plugin is asked (`reconcile`) for refunds its webhooks
    missed."""

    interval_seconds: float = 30


# The section both loops once shared; still read, with a warning, so that configurations written for it work.
LEGACY_RECONCILER = "reconciler"


@dataclass(frozen=True)
class HttpConfig:
    """Timeouts of the one shared outgoing ClientSession (never aiohttp's 300 s default)."""

    connect_timeout_seconds: float = 5
    total_timeout_seconds: float = 15


@dataclass(frozen=True)
class EngineConfig:
    """Background work gives way to webhooks: platforms retry a webhook not answered within about 5 s.

    Each engine cycle starts once no webhook is in flight and none finished for `yield_quiet_seconds`, or after
    `yield_max_seconds` at the latest (0: never wait); it then drains all its work, so it is never starved.
    """

    yield_quiet_seconds: float = 0.05
    yield_max_seconds: float = 5.0
    # Work an instance claims (a batch to send or query, reports to deliver) stays its own this long: an instance
    # that dies holding work delays it by at most this, and one that outlives it may see the work done twice
    # (the same batch_no resent, a result delivered again), so it must exceed http.total_timeout_seconds.
    lease_seconds: float = 120.0
    # `serve` runs the engine in a process of its own beside the web process (both on the same store), so that
    # intake keeps a core of its own and the engine's catching up never holds intake's event loop. False: the
    # engine runs on the web process's loop, yielding to webhooks as above (the yield settings apply only then).
    own_process: bool = True


@dataclass(frozen=True)
class AdminConfig:
    """How the dashboard shows things to the operator."""

    timezone: str | None = None  # an IANA zone name (Asia/Shanghai); None: the machine's zone

    @property
    def zone(self) -> ZoneInfo | None:
        """The operator's zone, or None for the machine's (`datetime.astimezone()` with no argument)."""
        return ZoneInfo(self.timezone) if self.timezone else None


@dataclass(frozen=True)
class MetricsConfig:
    """`listen` (host:port): /metrics is also served there, without the admin token, as exporters usually are."""

    listen: str | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) of `listen`, already validated by the config reader."""
        return _host_port(self.listen) if self.listen else None


@dataclass(frozen=True)
class LoggingConfig:
    """How `serve` writes its lines to stderr: `text` for a terminal, `json` (one object a line) for journald,
    Loki and other collectors that index fields."""

    format: str = "text"


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole service configuration. `platforms.<name>` is owned, and validated, by that platform's plugin."""

    server: ServerConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    alipay: AlipayConfig
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    approval: ApprovalConfig = field(default_factory=ApprovalConfig)
    reporter: ReporterConfig = field(default_factory=ReporterConfig)
    alipay_query: AlipayQueryConfig = field(default_factory=AlipayQueryConfig)
    platform_poll: PlatformPollConfig = field(default_factory=PlatformPollConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    plugins_dir: Path | None = None
    # Plugin settings often hold webhook secrets we cannot recognise, so they stay out of the repr.
    platforms: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def notify_url(self) -> str:
        """Where Alipay posts batch refund results (`notify_url`)."""
        return self.server.public_url.rstrip("/") + "/alipay/notify"

    @property
    def dback_notify_url(self) -> str:
        """Where Alipay posts the refund-of-fees (`dback_notify_url`) results."""
        return self.server.public_url.rstrip("/") + "/alipay/dback-notify"


# --- interpolation ---------------------------------------------------------------------------------------

# `$${` (escape), `${NAME}` / `${NAME:-default}`, or a bare `${` that starts neither (malformed).
_REFERENCE: Final = re.compile(r"\$\$\{|\$\{(?:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})?")
_MALFORMED: Final = "malformed reference: write ${VAR} or ${VAR:-default}, or $${ for a literal ${"


class _FromEnv(str):
    """A string produced by `${...}`: numeric and boolean settings may read it as their type (`port: ${PORT}`)."""


class _Unresolved:
    """Stands in for a value whose interpolation already produced a problem, so it is not reported twice."""


_UNRESOLVED: Final = _Unresolved()


def _interpolate(node: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    """Replace references in every string scalar of the parsed document (mapping keys are left alone).

    As in the shell, `${VAR:-default}` uses the default when VAR is unset *or empty*.
    """
    if isinstance(node, Mapping):
        return {key: _interpolate(value, _join(path, key), env, problems) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, f"{path}[{i}]", env, problems) for i, value in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    failures: list[str] = []
    substituted = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal substituted
        name, default = match.group(1), match.group(2)
        if match.group(0) == "$${":
            return "${"
        if name is None:
            failures.append(_MALFORMED)
            return ""
        substituted = True
        value = env.get(name)
        if not value and default is not None:
            return default
        if value is None:
            failures.append(f"environment variable {name} is not set")
            return ""
        return value

    result = _REFERENCE.sub(substitute, node)
    problems.extend(f"{path}: {failure}" for failure in failures)
    if failures:
        return _UNRESOLVED
    return _FromEnv(result) if substituted else result


def _plain(node: Any) -> Any:
    """Plain built-in types for plugin settings, so that plugins can dump or compare them freely."""
    if isinstance(node, Mapping):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return str(node) if isinstance(node, str) else node


# --- reading and validation --------------------------------------------------------------------------------


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _keys(cls: type, *, except_: Collection[str] = ()) -> tuple[str, ...]:
    """The keys a section accepts are its dataclass's fields, so the two cannot drift apart."""
    return tuple(f.name for f in fields(cls) if f.name not in except_)


class _Section:
    """One mapping of the document, read key by key.

    Every problem lands in the shared list and each reader returns a fallback, so validation carries on and
    reports the rest. `keys=None` allows any key (account names, platform names).
    """

    def __init__(self, data: Any, path: str, problems: list[str], keys: Collection[str] | None) -> None:
        self.path = path
        self.problems = problems
        if data is None or data is _UNRESOLVED:
            data = {}
        elif not isinstance(data, Mapping):
            self.problem("", "must be a mapping")
            data = {}
        for key in data:
            if keys is not None and key not in keys:
                self.problem(str(key), "unknown key")
        self.data: Mapping[Any, Any] = data

    def problem(self, key: str, message: str) -> None:
        where = _join(self.path, key) if key else self.path or "(top level)"
        self.problems.append(f"{where}: {message}")

    def section(self, key: str, keys: Collection[str] | None) -> _Section:
        return _Section(self.data.get(key), _join(self.path, key), self.problems, keys)

    def read(self, key: str, fallback: T, required: bool, convert: Callable[[Any], T | None], expected: str) -> T:
        """The converted value, or `fallback` when absent (a problem if `required`) or invalid (a problem)."""
        value = self.data.get(key)
        if value is _UNRESOLVED:
            return fallback
        if value is None or value == "":
            if required:
                self.problem(key, "missing")
            return fallback
        converted = convert(value)
        if converted is None:
            self.problem(key, expected)
            return fallback
        return converted

    def string(self, key: str, default: str = "", *, required: bool = False) -> str:
        return self.read(key, default, required, _as_str, "must be a string")

    def integer(self, key: str, default: int, low: int, high: int | None = None) -> int:
        expected = f"must be an integer between {low} and {high}" if high else f"must be an integer >= {low}"
        return self.read(key, default, False, lambda v: _within(_as_int(v), low, high), expected)

    def seconds(self, key: str, default: float, *, zero_ok: bool = False) -> float:
        low = 0 if zero_ok else None
        expected = "must be a number of seconds >= 0" if zero_ok else "must be a number of seconds > 0"
        return self.read(key, default, False, lambda v: _within(_as_number(v), low, None), expected)

    def boolean(self, key: str, default: bool) -> bool:
        return self.read(key, default, False, _as_bool, "must be true or false")

    def seconds_list(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        """A non-empty list of durations > 0; each bad element is reported with its index."""
        value = self.data.get(key)
        if value is None or value is _UNRESOLVED:
            return default
        if not isinstance(value, list) or not value:
            self.problem(key, "must be a non-empty list of numbers of seconds > 0")
            return default
        items = [_within(_as_number(item), None, None) for item in value]
        for i, (raw, item) in enumerate(zip(value, items, strict=True)):
            if item is None and raw is not _UNRESOLVED:
                self.problem(f"{key}[{i}]", "must be a number of seconds > 0")
        return tuple(item for item in items if item is not None) or default


def _as_str(value: Any) -> str | None:
    return str(value) if isinstance(value, str) else None


def _as_partner(value: Any) -> str | None:
    """A PID written without quotes is a YAML integer; accept it rather than make operators guess why."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if re.fullmatch(r"2088\d{12}", text) else None


def _as_app_id(value: Any) -> str | None:
    """An open-platform app id (16 digits); unquoted, it is a YAML integer, accepted as such."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if re.fullmatch(r"[0-9]{16}", text) else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, _FromEnv) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, _FromEnv):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, _FromEnv):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


N = TypeVar("N", int, float)


def _within(value: N | None, low: N | None, high: N | None) -> N | None:
    """`value` if finite and within [low, high] (`low=None` meaning strictly positive), else None."""
    if value is None or not math.isfinite(value):
        return None
    if (value < low) if low is not None else (value <= 0):
        return None
    return value if high is None or value <= high else None


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _host_port(value: str) -> tuple[str, int] | None:
    """`host:port` (`[::1]:9464` for IPv6) as (host, port), or None when it is not one."""
    try:
        parts = urlsplit("//" + value)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or port is None or port < 1 or parts.path or parts.query or parts.username:
        return None
    return host, port


def _resolve(name: str, base_dir: Path | None) -> Path:
    """Relative paths are relative to the config file's folder, not to wherever the service was started."""
    path = Path(name).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def _read_server(doc: _Section) -> ServerConfig:
    server = doc.section("server", _keys(ServerConfig))
    public_url = server.string("public_url", required=True)
    if public_url and not _is_http_url(public_url):
        server.problem("public_url", "must be an http(s) URL")
    return ServerConfig(
        public_url=public_url,
        host=server.string("host", ServerConfig.host),
        port=server.integer("port", ServerConfig.port, 1, 65535),
        max_body_bytes=server.integer("max_body_bytes", ServerConfig.max_body_bytes, 1),
        admin_token=Secret(token) if (token := server.string("admin_token")) else None,
        uvloop=server.boolean("uvloop", ServerConfig.uvloop),
    )


def _read_store(doc: _Section) -> StoreConfig:
    store = doc.section("store", _keys(StoreConfig))
    url = store.string("url", StoreConfig.url)
    if not url.startswith(STORE_SCHEMES) or url == "sqlite:///":
        store.problem("url", "unsupported scheme (use sqlite:///PATH, sqlite:///:memory: or postgresql://...)")
    return StoreConfig(url=url)


# Account fields the file does not set: the name is the mapping key, the PEM texts are read from the files.
_ACCOUNT_KEYS: Final = _keys(AlipayAccount, except_=("name", "private_key_pem", "alipay_public_key_pem"))


def _read_key_file(account: _Section, key: str, base_dir: Path | None) -> tuple[Path | None, Secret | None]:
    """Load a PEM file's text; parsing the key is the signer's job, not the config's."""
    name = account.string(key, required=True)
    if not name:
        return None, None
    path = _resolve(name, base_dir)
    try:
        return path, Secret(path.read_text(encoding="ascii"))
    except OSError as exc:
        account.problem(key, f"cannot read {path}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        account.problem(key, f"cannot read {path}: not a PEM text file")
    return path, None


def _read_gateway_url(account: _Section, default: str) -> str:
    url = account.string("gateway_url", default)
    if not _is_http_url(url):
        account.problem("gateway_url", "must be an http(s) URL")
    return url


def _read_account(name: str, account: _Section, base_dir: Path | None) -> AlipayAccount:
    partner = account.read("partner", "", True, _as_partner, "must be 16 digits starting with 2088")
    sign_type = account.string("sign_type", "MD5")
    md5_key = private_file = public_file = private_pem = public_pem = None
    if sign_type == "MD5":  # one branch per entry of SUPPORTED_SIGN_TYPES
        md5_key = Secret(account.string("md5_key", required=True))
    elif sign_type == "RSA":
        private_file, private_pem = _read_key_file(account, "private_key_file", base_dir)
        public_file, public_pem = _read_key_file(account, "alipay_public_key_file", base_dir)
    else:
        account.problem("sign_type", f"unsupported sign_type {sign_type} (use {' or '.join(SUPPORTED_SIGN_TYPES)})")
    gateway_url = _read_gateway_url(account, DEFAULT_GATEWAY_URL)
    input_charset = account.string("input_charset", "utf-8").lower()
    if input_charset not in INPUT_CHARSETS:
        account.problem("input_charset", f"must be one of {', '.join(INPUT_CHARSETS)}")
    channel = account.string("channel", "mapi")
    if channel not in MAPI_CHANNELS:
        account.problem("channel", f"must be one of {', '.join(CHANNELS)}")
    seller_user_id = account.read("seller_user_id", None, False, _as_partner, "must be 16 digits starting with 2088")
    seller_email = account.string("seller_email") or None
    if channel == "mapi_pwd" and not (seller_user_id or seller_email):
        account.problem("seller_user_id", "mapi_pwd needs seller_user_id or seller_email")
    return AlipayAccount(
        name=name,
        partner=partner,
        sign_type=sign_type,
        md5_key=md5_key,
        private_key_file=private_file,
        alipay_public_key_file=public_file,
        private_key_pem=private_pem,
        alipay_public_key_pem=public_pem,
        gateway_url=gateway_url,
        input_charset=input_charset,
        use_freeze_amount=account.boolean("use_freeze_amount", False),
        channel=channel,
        seller_user_id=seller_user_id,
        seller_email=seller_email,
    )


_OPENAPI_KEYS: Final = _keys(OpenApiAccount, except_=("name",))


def _read_pem(account: _Section, key: str, base_dir: Path | None) -> tuple[Path | None, Secret | None]:
    """A PEM text given as `key` itself or as `key_file`: exactly one of the two."""
    if account.data.get(key) not in (None, "") and account.data.get(f"{key}_file") not in (None, ""):
        account.problem(key, f"give {key} or {key}_file, not both")
        return None, None
    if account.data.get(f"{key}_file") not in (None, ""):
        return _read_key_file(account, f"{key}_file", base_dir)
    text = account.string(key)
    if not text and account.data.get(key) is not _UNRESOLVED:
        account.problem(key, f"missing (give {key} or {key}_file)")
    return None, Secret(text) if text else None


def _read_openapi_account(name: str, account: _Section, base_dir: Path | None) -> OpenApiAccount:
    app_id = account.read("app_id", "", True, _as_app_id, "must be the app's id: 16 digits")
    sign_type = account.string("sign_type", OpenApiAccount.sign_type)
    if sign_type not in SIGN_TYPES:
        account.problem("sign_type", f"unsupported sign_type {sign_type} (use {' or '.join(SIGN_TYPES)})")
    private_file, private_pem = _read_pem(account, "private_key", base_dir)
    public_file, public_pem = _read_pem(account, "alipay_public_key", base_dir)
    if private_pem is not None and public_pem is not None and sign_type in SIGN_TYPES:
        try:
            load_signer(sign_type, private_pem.reveal(), public_pem.reveal())
        except KeyProblem as exc:
            account.problem(exc.field, exc.message)
    gateway_url = _read_gateway_url(account, DEFAULT_OPENAPI_GATEWAY_URL)
    return OpenApiAccount(
        name=name,
        app_id=app_id,
        private_key=private_pem,
        private_key_file=private_file,
        alipay_public_key=public_pem,
        alipay_public_key_file=public_file,
        sign_type=sign_type,
        gateway_url=gateway_url,
        app_auth_token=Secret(token) if (token := account.string("app_auth_token")) else None,
        max_concurrency=account.integer("max_concurrency", OpenApiAccount.max_concurrency, 1, 64),
    )


def _read_any_account(name: str, accounts: _Section, base_dir: Path | None) -> Account:
    """The account as its `channel` says (default mapi, so configs written before OpenAPI read as they did)."""
    data = accounts.data.get(name)
    channel = data.get("channel", "mapi") if isinstance(data, Mapping) else "mapi"
    if channel == "openapi":
        return _read_openapi_account(str(name), accounts.section(name, _OPENAPI_KEYS), base_dir)
    # mapi, mapi_pwd, or a channel _read_account refuses (an unresolved ${VAR} is reported where it is read)
    return _read_account(str(name), accounts.section(name, _ACCOUNT_KEYS), base_dir)


def _read_alipay(doc: _Section, base_dir: Path | None) -> AlipayConfig:
    alipay = doc.section("alipay", _keys(AlipayConfig))
    accounts = alipay.section("accounts", None)
    if not accounts.data and alipay.data.get("accounts") is not _UNRESOLVED:
        alipay.problem("accounts", "at least one account is required")
    return AlipayConfig(
        accounts=MappingProxyType(
            {
                str(name): _read_any_account(name, accounts, base_dir)
                for name in accounts.data
            }
        )
    )


def _read_batching(doc: _Section) -> BatchingConfig:
    batching = doc.section("batching", _keys(BatchingConfig))
    return BatchingConfig(
        max_details=batching.integer("max_details", BatchingConfig.max_details, 1, MAX_BATCH_DETAILS),
        max_wait_seconds=batching.seconds("max_wait_seconds", BatchingConfig.max_wait_seconds),
    )


def _read_approval(doc: _Section) -> ApprovalConfig:
    approval = doc.section("approval", _keys(ApprovalConfig))
    after = approval.seconds("reminder_after_seconds", ApprovalConfig.reminder_after_seconds)
    reminder_url = approval.string("reminder_url") or None
    if reminder_url and not _is_http_url(reminder_url):
        approval.problem("reminder_url", "must be an http(s) URL")
    return ApprovalConfig(reminder_after_seconds=after, reminder_url=reminder_url)


def _read_reporter(doc: _Section) -> ReporterConfig:
    reporter = doc.section("reporter", _keys(ReporterConfig))
    base = reporter.seconds("base_delay_seconds", ReporterConfig.base_delay_seconds)
    maximum = reporter.seconds("max_delay_seconds", ReporterConfig.max_delay_seconds)
    if maximum < base:
        reporter.problem("max_delay_seconds", "must be >= base_delay_seconds")
    return ReporterConfig(
        base_delay_seconds=base,
        max_delay_seconds=maximum,
        give_up_after_seconds=reporter.seconds("give_up_after_seconds", ReporterConfig.give_up_after_seconds),
    )


def _read_alipay_query(section: _Section) -> AlipayQueryConfig:
    return AlipayQueryConfig(
        first_query_after_seconds=section.seconds(
            "first_query_after_seconds", AlipayQueryConfig.first_query_after_seconds, zero_ok=True
        ),
        schedule_seconds=section.seconds_list("schedule_seconds", AlipayQueryConfig.schedule_seconds),
        interval_seconds=section.seconds("interval_seconds", AlipayQueryConfig.interval_seconds),
    )


def _read_loops(doc: _Section) -> tuple[AlipayQueryConfig, PlatformPollConfig]:
    """`alipay_query` and `platform_poll`; or the old `reconciler` section, read as `alipay_query` with its
    interval for the platform poll too (as it was), and a warning that names the new sections."""
    if doc.data.get(LEGACY_RECONCILER) is None:
        poll = doc.section("platform_poll", _keys(PlatformPollConfig))
        interval = poll.seconds("interval_seconds", PlatformPollConfig.interval_seconds)
        return _read_alipay_query(doc.section("alipay_query", _keys(AlipayQueryConfig))), PlatformPollConfig(interval)
    log.warning("config: the section `reconciler` is now `alipay_query` (the Alipay query), and its "
                "interval_seconds also `platform_poll.interval_seconds` (the platform poll); it is read as both")
    for new in ("alipay_query", "platform_poll"):
        if doc.data.get(new) is not None:
            doc.problem(LEGACY_RECONCILER, f"is the old name of alipay_query and platform_poll: remove it or {new}")
    query = _read_alipay_query(doc.section(LEGACY_RECONCILER, _keys(AlipayQueryConfig)))
    return query, PlatformPollConfig(interval_seconds=query.interval_seconds)


def _read_http(doc: _Section) -> HttpConfig:
    http = doc.section("http", _keys(HttpConfig))
    connect = http.seconds("connect_timeout_seconds", HttpConfig.connect_timeout_seconds)
    total = http.seconds("total_timeout_seconds", HttpConfig.total_timeout_seconds)
    if total < connect:
        http.problem("total_timeout_seconds", "must be >= connect_timeout_seconds")
    return HttpConfig(connect_timeout_seconds=connect, total_timeout_seconds=total)


def _read_engine(doc: _Section, http: HttpConfig) -> EngineConfig:
    engine = doc.section("engine", _keys(EngineConfig))
    quiet = engine.seconds("yield_quiet_seconds", EngineConfig.yield_quiet_seconds, zero_ok=True)
    longest = engine.seconds("yield_max_seconds", EngineConfig.yield_max_seconds, zero_ok=True)
    lease = engine.seconds("lease_seconds", EngineConfig.lease_seconds)
    if lease <= http.total_timeout_seconds:
        engine.problem("lease_seconds", "must be > http.total_timeout_seconds")
    own_process = engine.boolean("own_process", EngineConfig.own_process)
    return EngineConfig(yield_quiet_seconds=quiet, yield_max_seconds=longest, lease_seconds=lease,
                        own_process=own_process)


def _read_admin(doc: _Section) -> AdminConfig:
    admin = doc.section("admin", _keys(AdminConfig))
    timezone = admin.string("timezone") or None
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            admin.problem("timezone", f"unknown time zone {timezone!r} (use an IANA name such as Asia/Shanghai)")
            timezone = None
    return AdminConfig(timezone=timezone)


def _read_metrics(doc: _Section) -> MetricsConfig:
    metrics = doc.section("metrics", _keys(MetricsConfig))
    listen = metrics.read("listen", None, False, lambda v: v if isinstance(v, str) and _host_port(v) else None,
                          "must be host:port, such as 127.0.0.1:9464")
    return MetricsConfig(listen=listen)


def _read_logging(doc: _Section) -> LoggingConfig:
    section = doc.section("logging", _keys(LoggingConfig))
    fmt = section.string("format", LoggingConfig.format)
    if fmt not in LOG_FORMATS:
        section.problem("format", f"must be one of {', '.join(LOG_FORMATS)}")
    return LoggingConfig(format=fmt)


def _read_plugins_dir(doc: _Section, base_dir: Path | None) -> Path | None:
    name = doc.string("plugins_dir")
    if not name:
        return None
    path = _resolve(name, base_dir)
    if not path.is_dir():
        doc.problem("plugins_dir", f"not a directory: {path}")
    return path


def _read_platforms(doc: _Section) -> Mapping[str, Any]:
    """Each `platforms.<name>` must be a mapping; what is inside is for that platform's plugin to check."""
    platforms = doc.section("platforms", None)
    result: dict[str, Any] = {}
    for name, settings in platforms.data.items():
        if not isinstance(name, str):
            platforms.problem(str(name), "platform names must be strings")
        elif settings is not _UNRESOLVED:
            result[name] = _plain(platforms.section(name, None).data)
    return MappingProxyType(result)


def parse_config(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Interpolate `${...}` from `env` (default: the process environment), validate, and build the Config.

    Raises ConfigError listing every problem. `base_dir` is the folder relative key files are found in.
    """
    problems: list[str] = []
    document = _interpolate(data, "", os.environ if env is None else env, problems)
    doc = _Section(document, "", problems, (*_keys(Config), LEGACY_RECONCILER))
    config = Config(
        server=_read_server(doc),
        store=_read_store(doc),
        alipay=_read_alipay(doc, base_dir),
        batching=_read_batching(doc),
        approval=_read_approval(doc),
        reporter=_read_reporter(doc),
        alipay_query=(loops := _read_loops(doc))[0],
        platform_poll=loops[1],
        http=(http := _read_http(doc)),  # problems are listed in the order of the file's sections
        engine=_read_engine(doc, http),
        admin=_read_admin(doc),
        metrics=_read_metrics(doc),
        logging=_read_logging(doc),
        plugins_dir=_read_plugins_dir(doc, base_dir),
        platforms=_read_platforms(doc),
    )
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read a YAML file (safe_load) and parse it; relative key files resolve against the file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: invalid YAML: {exc}"]) from exc
    return parse_config({} if data is None else data, base_dir=path.resolve().parent)
