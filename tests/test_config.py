"""Configuration: interpolation, defaults, every problem named by its path, key files, redaction, CLI."""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from refund_adapter.cli import main
from refund_adapter.config import (
    AdminConfig,
    AlipayAccount,
    AlipayQueryConfig,
    BatchingConfig,
    Config,
    ConfigError,
    EngineConfig,
    HttpConfig,
    MetricsConfig,
    OpenApiAccount,
    PlatformPollConfig,
    ReporterConfig,
    Secret,
    ServerConfig,
    StoreConfig,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example.yaml"
PID = "2088101122136241"
MD5_KEY = "md5-key-that-must-not-leak-0123456789"
PRIVATE_PEM = "-----BEGIN PRIVATE KEY-----\nMIIprivate-secret-body\n-----END PRIVATE KEY-----\n"
PUBLIC_PEM = "-----BEGIN PUBLIC KEY-----\nMIIpublic-body\n-----END PUBLIC KEY-----\n"
UNSUPPORTED_STORE_URL = "store.url: unsupported scheme (use sqlite:///PATH, sqlite:///:memory: or postgresql://...)"


def minimal(**sections: Any) -> dict[str, Any]:
    """The smallest valid document, with `sections` replacing or adding top-level keys."""
    data: dict[str, Any] = {
        "server": {"public_url": "https://refunds.example.com"},
        "alipay": {"accounts": {"main": {"partner": PID, "md5_key": MD5_KEY}}},
    }
    data.update(copy.deepcopy(sections))
    return data


def problems(data: Any, env: dict[str, str] | None = None, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env=env or {}, base_dir=base_dir)
    return caught.value.problems


def write_rsa_keys(folder: Path) -> None:
    (folder / "keys").mkdir()
    (folder / "keys" / "private.pem").write_text(PRIVATE_PEM)
    (folder / "keys" / "alipay_public.pem").write_text(PUBLIC_PEM)


# --- defaults and derived values --------------------------------------------------------------------------


def test_defaults_fill_every_optional_setting() -> None:
    config = parse_config(minimal(), env={})
    assert config.server == ServerConfig(
        host="127.0.0.1", port=8080, public_url="https://refunds.example.com", max_body_bytes=1048576
    )
    assert config.store.url == "sqlite:///var/lib/refund-adapter/refunds.db"
    assert (config.batching.max_details, config.batching.max_wait_seconds) == (1000, 2)
    assert dataclasses.astuple(config.reporter) == (5, 3600, 86400)
    assert config.alipay_query.first_query_after_seconds == 300
    assert config.alipay_query.schedule_seconds == (300, 900, 3600, 10800, 21600, 43200, 86400)
    assert config.alipay_query.interval_seconds == 30
    assert config.platform_poll.interval_seconds == 30
    assert dataclasses.astuple(config.http) == (5, 15)
    assert dataclasses.astuple(config.engine) == (0.05, 5, 120, True)  # own_process: serve starts the engine apart
    assert config.plugins_dir is None
    assert dict(config.platforms) == {}
    account = config.alipay.accounts["main"]
    assert (account.name, account.partner, account.sign_type) == ("main", PID, "MD5")
    assert account.md5_key is not None and account.md5_key.reveal() == MD5_KEY
    assert account.gateway_url == "https://mapi.alipay.com/gateway.do"
    assert (account.input_charset, account.use_freeze_amount) == ("utf-8", False)


@pytest.mark.parametrize("public_url", ["https://refunds.example.com", "https://refunds.example.com/"])
def test_notify_urls_derive_from_public_url_without_double_slash(public_url: str) -> None:
    config = parse_config(minimal(server={"public_url": public_url}), env={})
    assert config.notify_url == "https://refunds.example.com/alipay/notify"
    assert config.dback_notify_url == "https://refunds.example.com/alipay/dback-notify"


def test_config_is_frozen_all_the_way_to_the_accounts() -> None:
    config = parse_config(minimal(), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.alipay.accounts["other"] = config.alipay.accounts["main"]  # type: ignore[index]


def test_required_settings_are_reported_when_the_document_is_empty() -> None:
    assert problems({}) == ["server.public_url: missing", "alipay.accounts: at least one account is required"]


# --- interpolation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "env", "expected"),
    [
        ("${HOST}", {"HOST": "10.0.0.5"}, "10.0.0.5"),
        ("${HOST:-0.0.0.0}", {}, "0.0.0.0"),
        ("${HOST:-0.0.0.0}", {"HOST": ""}, "0.0.0.0"),
        ("${HOST:-0.0.0.0}", {"HOST": "10.0.0.5"}, "10.0.0.5"),
        ("${A}.${B:-b}.x", {"A": "a"}, "a.b.x"),
        ("$${HOST}", {"HOST": "10.0.0.5"}, "${HOST}"),
        ("cost $5", {}, "cost $5"),
    ],
    ids=["set", "default", "empty-uses-default", "set-beats-default", "several", "escaped", "plain-dollar"],
)
def test_interpolation_in_string_scalars(raw: str, env: dict[str, str], expected: str) -> None:
    assert parse_config(minimal(server={"public_url": "https://x.example", "host": raw}), env=env).server.host == (
        expected
    )


def test_an_environment_value_never_changes_the_document_structure() -> None:
    hostile = "x\nserver: {port: 1}\n- [a, b]"
    config = parse_config(minimal(platforms={"p": {"secret": "${S}"}}), env={"S": hostile})
    assert config.platforms["p"] == {"secret": hostile}
    assert type(config.platforms["p"]["secret"]) is str


def test_numbers_and_booleans_may_come_from_the_environment_but_not_from_quoted_strings() -> None:
    data = minimal(server={"public_url": "https://x.example", "port": "${PORT}"}, batching={"max_wait_seconds": "${W}"})
    data["alipay"]["accounts"]["main"]["use_freeze_amount"] = "${FREEZE:-true}"
    config = parse_config(data, env={"PORT": "9000", "W": "0.5"})
    assert (config.server.port, config.batching.max_wait_seconds) == (9000, 0.5)
    assert config.alipay.accounts["main"].use_freeze_amount is True
    assert problems(minimal(server={"public_url": "https://x.example", "port": "9000"})) == [
        "server.port: must be an integer between 1 and 65535"
    ]


def test_unset_variables_are_reported_with_their_path_once_each() -> None:
    data = minimal(server={"public_url": "${PUBLIC_URL}"}, alipay_query={"schedule_seconds": [300, "${LATER}"]})
    data["alipay"]["accounts"]["main"]["md5_key"] = "${ALIPAY_MD5_KEY}"
    data["platforms"] = {"p": {"nested": ["${WEBHOOK_SECRET}"]}}
    assert problems(data, env={"UNRELATED": "1"}) == [
        "server.public_url: environment variable PUBLIC_URL is not set",
        "alipay.accounts.main.md5_key: environment variable ALIPAY_MD5_KEY is not set",
        "alipay_query.schedule_seconds[1]: environment variable LATER is not set",
        "platforms.p.nested[0]: environment variable WEBHOOK_SECRET is not set",
    ]


def test_malformed_reference_is_a_problem() -> None:
    assert problems(minimal(store={"url": "sqlite:///${1DIR}/db"})) == [
        "store.url: malformed reference: write ${VAR} or ${VAR:-default}, or $${ for a literal ${"
    ]


def test_default_env_is_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFUND_ADAPTER_TEST_HOST", "192.0.2.7")
    config = parse_config(minimal(server={"public_url": "https://x.example", "host": "${REFUND_ADAPTER_TEST_HOST}"}))
    assert config.server.host == "192.0.2.7"


# --- validation -------------------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_its_exact_path() -> None:
    data = {
        "server": {"public_url": "ftp://refunds.example.com", "port": 0, "max_body_bytes": "big", "tls": True,
                   "uvloop": "yes"},
        "store": {"url": "mysql://db/refunds"},
        "alipay": {
            "accounts": {
                "main": {"partner": "2088123", "sign_type": "MD5"},
                "legacy": {"partner": PID, "sign_type": "DSA", "input_charset": "latin-1"},
                "rsa": {"partner": PID, "sign_type": "RSA", "gateway_url": "mapi.alipay.com"},
                "typo": {"partner": PID, "md5_key": "k", "md5key": "k", "use_freeze_amount": "yes"},
            }
        },
        "batching": {"max_details": 1001, "max_wait_seconds": -1},
        "reporter": {"base_delay_seconds": 60, "max_delay_seconds": 30},
        "alipay_query": {"first_query_after_seconds": -5, "schedule_seconds": [300, 0, "soon"]},
        "http": {"connect_timeout_seconds": 10, "total_timeout_seconds": 5},
        "plugins_dir": 3,
        "platforms": {"shop": ["not", "a", "mapping"]},
        "servers": {},
    }
    assert problems(data) == [
        "servers: unknown key",
        "server.tls: unknown key",
        "server.public_url: must be an http(s) URL",
        "server.port: must be an integer between 1 and 65535",
        "server.max_body_bytes: must be an integer >= 1",
        "server.uvloop: must be true or false",
        UNSUPPORTED_STORE_URL,
        "alipay.accounts.main.partner: must be 16 digits starting with 2088",
        "alipay.accounts.main.md5_key: missing",
        "alipay.accounts.legacy.sign_type: unsupported sign_type DSA (use MD5 or RSA)",
        "alipay.accounts.legacy.input_charset: must be one of utf-8, gbk, gb2312",
        "alipay.accounts.rsa.private_key_file: missing",
        "alipay.accounts.rsa.alipay_public_key_file: missing",
        "alipay.accounts.rsa.gateway_url: must be an http(s) URL",
        "alipay.accounts.typo.md5key: unknown key",
        "alipay.accounts.typo.use_freeze_amount: must be true or false",
        "batching.max_details: must be an integer between 1 and 1000",
        "batching.max_wait_seconds: must be a number of seconds > 0",
        "reporter.max_delay_seconds: must be >= base_delay_seconds",
        "alipay_query.first_query_after_seconds: must be a number of seconds >= 0",
        "alipay_query.schedule_seconds[1]: must be a number of seconds > 0",
        "alipay_query.schedule_seconds[2]: must be a number of seconds > 0",
        "http.total_timeout_seconds: must be >= connect_timeout_seconds",
        "plugins_dir: must be a string",
        "platforms.shop: must be a mapping",
    ]


def test_config_error_message_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"public_url": "nope"}}, env={})
    assert str(caught.value).splitlines() == caught.value.problems
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("server", [], "server: must be a mapping"),
        ("batching", {"max_details": True}, "batching.max_details: must be an integer between 1 and 1000"),
        ("batching", {"max_details": 10.5}, "batching.max_details: must be an integer between 1 and 1000"),
        (
            "http",
            {"total_timeout_seconds": float("inf")},
            "http.total_timeout_seconds: must be a number of seconds > 0",
        ),
        (
            "alipay_query",
            {"schedule_seconds": []},
            "alipay_query.schedule_seconds: must be a non-empty list of numbers of seconds > 0",
        ),
        ("platform_poll", {"interval_seconds": 0}, "platform_poll.interval_seconds: must be a number of seconds > 0"),
        ("store", {"url": "sqlite:///"}, UNSUPPORTED_STORE_URL),
        ("store", {"url": "sqlite://relative.db"}, UNSUPPORTED_STORE_URL),
    ],
)
def test_wrong_types_and_values(section: str, value: Any, expected: str) -> None:
    data = minimal(**{section: value}) if section != "server" else {**minimal(), "server": value}
    assert expected in problems(data)


def test_engine_yield_settings_accept_zero_and_environment_values() -> None:
    config = parse_config(minimal(engine={"yield_quiet_seconds": 0, "yield_max_seconds": "${MAX}"}), env={"MAX": "0"})
    assert config.engine == EngineConfig(yield_quiet_seconds=0, yield_max_seconds=0)
    config = parse_config(minimal(engine={"yield_quiet_seconds": 0.2, "yield_max_seconds": 1.5}), env={})
    assert dataclasses.astuple(config.engine) == (0.2, 1.5, 120, True)


def test_the_engine_runs_apart_unless_told_not_to() -> None:
    assert parse_config(minimal(), env={}).engine.own_process
    assert not parse_config(minimal(engine={"own_process": "${APART}"}), env={"APART": "false"}).engine.own_process
    assert problems(minimal(engine={"own_process": "sometimes"})) == ["engine.own_process: must be true or false"]


def test_engine_section_problems_are_reported_with_their_path() -> None:
    data = minimal(engine={"yield_quiet_seconds": -0.1, "yield_max_seconds": "soon", "yield_min_seconds": 1})
    assert problems(data) == [
        "engine.yield_min_seconds: unknown key",
        "engine.yield_quiet_seconds: must be a number of seconds >= 0",
        "engine.yield_max_seconds: must be a number of seconds >= 0",
    ]
    assert problems(minimal(engine=[1])) == ["engine: must be a mapping"]


def test_engine_lease_must_outlast_any_http_request() -> None:
    http = {"connect_timeout_seconds": 1, "total_timeout_seconds": 4.5}
    assert parse_config(minimal(engine={"lease_seconds": 5}, http=http), env={}).engine.lease_seconds == 5
    # A lease that ends while its request may still be answered lets another instance do the same work again.
    assert problems(minimal(engine={"lease_seconds": 15})) == [
        "engine.lease_seconds: must be > http.total_timeout_seconds"
    ]
    assert problems(minimal(engine={"lease_seconds": 0})) == ["engine.lease_seconds: must be a number of seconds > 0"]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/lib/refund-adapter/refunds.db",
        "sqlite:///:memory:",
        "postgresql://refunds@db.internal:5432/refunds",
        "postgres://refunds@db.internal/refunds",
    ],
)
def test_supported_store_urls(url: str) -> None:
    assert parse_config(minimal(store={"url": url}), env={}).store.url == url


def test_unquoted_partner_and_upper_case_charset_are_accepted() -> None:
    data = minimal()
    data["alipay"]["accounts"]["main"].update(partner=int(PID), input_charset="GBK")
    account = parse_config(data, env={}).alipay.accounts["main"]
    assert (account.partner, account.input_charset) == (PID, "gbk")


def test_plugins_dir_resolves_against_the_config_folder_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    config = parse_config(minimal(plugins_dir="plugins"), env={}, base_dir=tmp_path)
    assert config.plugins_dir == tmp_path / "plugins"
    assert problems(minimal(plugins_dir="missing"), base_dir=tmp_path) == [
        f"plugins_dir: not a directory: {tmp_path / 'missing'}"
    ]


def test_platform_sections_are_kept_as_plain_mappings() -> None:
    config = parse_config(minimal(platforms={"shop": {"account": "main", "retries": 3}, "bare": None}), env={})
    assert dict(config.platforms) == {"shop": {"account": "main", "retries": 3}, "bare": {}}


# --- RSA key files -----------------------------------------------------------------------------------------


def rsa_document(private_key_file: str, alipay_public_key_file: str) -> dict[str, Any]:
    account = {
        "partner": PID,
        "sign_type": "RSA",
        "private_key_file": private_key_file,
        "alipay_public_key_file": alipay_public_key_file,
    }
    return minimal(alipay={"accounts": {"rsa": account}})


def test_rsa_key_files_resolve_against_the_config_file_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_rsa_keys(tmp_path)
    config_file = tmp_path / "refund-adapter.yaml"
    config_file.write_text(yaml.safe_dump(rsa_document("keys/private.pem", "keys/alipay_public.pem")))
    monkeypatch.chdir(tmp_path.parent)  # relative to the file's folder, not to the working directory
    account = load_config(config_file).alipay.accounts["rsa"]
    assert account.private_key_file == tmp_path / "keys" / "private.pem"
    assert account.private_key_pem is not None and account.private_key_pem.reveal() == PRIVATE_PEM
    assert account.alipay_public_key_pem is not None and account.alipay_public_key_pem.reveal() == PUBLIC_PEM
    assert account.md5_key is None


def test_absolute_rsa_key_paths_are_used_as_given(tmp_path: Path) -> None:
    write_rsa_keys(tmp_path)
    data = rsa_document(str(tmp_path / "keys" / "private.pem"), str(tmp_path / "keys" / "alipay_public.pem"))
    account = parse_config(data, env={}, base_dir=Path("/nonexistent")).alipay.accounts["rsa"]
    assert account.alipay_public_key_file == tmp_path / "keys" / "alipay_public.pem"


def test_unreadable_rsa_key_files_are_reported_with_the_resolved_path(tmp_path: Path) -> None:
    (tmp_path / "binary.der").write_bytes(b"\x30\x82\xff\xfe")
    assert problems(rsa_document("gone.pem", "binary.der"), base_dir=tmp_path) == [
        f"alipay.accounts.rsa.private_key_file: cannot read {tmp_path / 'gone.pem'}: No such file or directory",
        f"alipay.accounts.rsa.alipay_public_key_file: cannot read {tmp_path / 'binary.der'}: not a PEM text file",
    ]


# --- secrets ------------------------------------------------------------------------------------------------


def test_secrets_never_appear_in_reprs_or_string_formatting(tmp_path: Path) -> None:
    write_rsa_keys(tmp_path)
    data = rsa_document("keys/private.pem", "keys/alipay_public.pem")
    data["alipay"]["accounts"]["main"] = {"partner": PID, "md5_key": "${ALIPAY_MD5_KEY}"}
    data["platforms"] = {"shop": {"webhook_secret": "${WEBHOOK_SECRET}"}}
    config = parse_config(data, env={"ALIPAY_MD5_KEY": MD5_KEY, "WEBHOOK_SECRET": "whsec-leak"}, base_dir=tmp_path)
    main_account, rsa_account = config.alipay.accounts["main"], config.alipay.accounts["rsa"]
    rendered = [repr(config), str(config), repr(main_account), f"{rsa_account}", f"{main_account.md5_key}"]
    for text in rendered:
        for secret in (MD5_KEY, "MIIprivate-secret-body", "MIIpublic-body", "whsec-leak"):
            assert secret not in text
    assert "md5_key='***'" in repr(main_account)
    assert "private_key_pem='***'" in repr(rsa_account)
    assert main_account.md5_key == Secret(MD5_KEY) and main_account.md5_key.reveal() == MD5_KEY


def test_config_errors_never_include_secret_values() -> None:
    data = minimal(batching={"max_details": "${KEY}"})
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env={"KEY": MD5_KEY})
    assert caught.value.problems == ["batching.max_details: must be an integer between 1 and 1000"]


# --- files, the example, the command line ------------------------------------------------------------------


def test_load_config_reports_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert caught.value.problems[0].startswith(f"{broken}: invalid YAML")


def test_example_loads_with_its_environment_and_documents_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIPAY_MD5_KEY", MD5_KEY)
    monkeypatch.delenv("REFUND_ADAPTER_STORE_URL", raising=False)
    config = load_config(EXAMPLE)
    defaults = (StoreConfig(), BatchingConfig(), ReporterConfig(), AlipayQueryConfig(), PlatformPollConfig(),
                HttpConfig(), EngineConfig())
    sections = (config.store, config.batching, config.reporter, config.alipay_query, config.platform_poll,
                config.http, config.engine)
    assert sections == defaults
    assert config.alipay.accounts["main"].md5_key == Secret(MD5_KEY)
    assert config.notify_url == "https://refunds.example.com/alipay/notify"


def test_example_mentions_every_setting() -> None:
    text = EXAMPLE.read_text()
    sections = (Config, ServerConfig, StoreConfig, BatchingConfig, ReporterConfig, AlipayQueryConfig,
                PlatformPollConfig, HttpConfig, EngineConfig, AdminConfig, MetricsConfig)
    names = {field.name for cls in sections for field in dataclasses.fields(cls)}
    loaded_not_written = {"name", "private_key_pem", "alipay_public_key_pem"}
    names |= {field.name for field in dataclasses.fields(AlipayAccount)} - loaded_not_written
    names |= {field.name for field in dataclasses.fields(OpenApiAccount)} - loaded_not_written
    assert [name for name in sorted(names) if f"{name}:" not in text] == []


def write_config(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_check_config_summarises_a_valid_file(tmp_path: Path) -> None:
    shop = {"id": "s1", "secret": "whsec_" + "A" * 32, "callback_url": "https://shop.example/cb",
            "alipay_account": "main"}
    path = write_config(tmp_path, minimal(platforms={"generic": {"shops": [shop]}}))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 1 accounts, platforms: generic\n"


def test_cli_check_config_prints_each_problem_on_stderr_and_exits_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, minimal(batching={"max_details": 0}, extra=1))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "extra: unknown key",
        "batching.max_details: must be an integer between 1 and 1000",
    ]


def test_cli_check_config_reports_engine_problems(tmp_path: Path) -> None:
    path = write_config(tmp_path, minimal(engine={"yield_max_seconds": float("inf")}))
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["engine.yield_max_seconds: must be a number of seconds >= 0"]


def test_installed_command_checks_the_example(tmp_path: Path) -> None:
    command = shutil.which("refund-adapter")
    assert command is not None, "the refund-adapter console script is not installed"
    env = {"PATH": "/usr/bin:/bin", "ALIPAY_MD5_KEY": MD5_KEY}
    ok = subprocess.run([command, "check-config", str(EXAMPLE)], env=env, capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout) == (0, "ok: 1 accounts, platforms: (none)\n"), ok.stderr
    del env["ALIPAY_MD5_KEY"]
    bad = subprocess.run([command, "check-config", str(EXAMPLE)], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr == "alipay.accounts.main.md5_key: environment variable ALIPAY_MD5_KEY is not set\n"


def test_admin_timezone_and_metrics_listen_are_checked() -> None:
    config = parse_config(minimal(admin={"timezone": "Asia/Shanghai"}, metrics={"listen": "127.0.0.1:9464"}), env={})
    assert config.admin.zone is not None and config.admin.zone.key == "Asia/Shanghai"
    assert config.metrics.address == ("127.0.0.1", 9464)
    defaults = parse_config(minimal(), env={})
    assert defaults.admin.zone is None and defaults.metrics.address is None  # the machine's zone; no second site
    assert parse_config(minimal(metrics={"listen": "[::1]:9464"}), env={}).metrics.address == ("::1", 9464)
    listen_problem = "metrics.listen: must be host:port, such as 127.0.0.1:9464"
    for listen in ("9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "http://127.0.0.1:9464", "h:1/x", 9464):
        assert problems(minimal(metrics={"listen": listen})) == [listen_problem], listen
    assert problems(minimal(admin={"timezone": "Mars/Olympus", "tz": 1})) == [
        "admin.tz: unknown key",
        "admin.timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as Asia/Shanghai)",
    ]
    assert problems(minimal(admin={"timezone": "../../etc/passwd"}))[0].startswith("admin.timezone: unknown time zone")


def test_the_two_loops_have_their_own_sections() -> None:
    config = parse_config(minimal(alipay_query={"interval_seconds": 5, "first_query_after_seconds": 0},
                                  platform_poll={"interval_seconds": 600}), env={})
    assert (config.alipay_query.interval_seconds, config.alipay_query.first_query_after_seconds) == (5, 0)
    assert config.platform_poll.interval_seconds == 600


def test_the_old_reconciler_section_is_read_for_both_loops_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="refund_adapter.config"):
        config = parse_config(minimal(reconciler={"interval_seconds": 7, "schedule_seconds": [60, 120]}), env={})
    assert config.alipay_query == AlipayQueryConfig(interval_seconds=7, schedule_seconds=(60, 120))
    assert config.platform_poll == PlatformPollConfig(interval_seconds=7)
    assert ["alipay_query" in r.message and "platform_poll" in r.message for r in caplog.records] == [True]
    assert problems(minimal(reconciler={"schedule_seconds": []})) == [
        "reconciler.schedule_seconds: must be a non-empty list of numbers of seconds > 0"
    ]


def test_the_old_reconciler_section_beside_a_new_one_is_a_problem() -> None:
    assert problems(minimal(reconciler={"interval_seconds": 7}, platform_poll={"interval_seconds": 9})) == [
        "reconciler: is the old name of alipay_query and platform_poll: remove it or platform_poll"
    ]


def test_an_account_on_the_password_refund_names_its_seller() -> None:
    data = minimal(approval={"reminder_after_seconds": 0, "reminder_url": "mailto:ops@example.com"})
    data["alipay"]["accounts"]["main"]["channel"] = "mapi_pwd"
    data["alipay"]["accounts"]["other"] = {"partner": PID, "md5_key": MD5_KEY, "channel": "nopwd",
                                           "seller_user_id": "12345"}
    assert problems(data) == [
        "alipay.accounts.main.seller_user_id: mapi_pwd needs seller_user_id or seller_email",
        "alipay.accounts.other.channel: must be one of mapi, mapi_pwd, openapi",
        "alipay.accounts.other.seller_user_id: must be 16 digits starting with 2088",
        "approval.reminder_after_seconds: must be a number of seconds > 0",
        "approval.reminder_url: must be an http(s) URL",
    ]
    data = minimal()
    data["alipay"]["accounts"]["main"].update(channel="mapi_pwd", seller_email="refunds@example.com")
    config = parse_config(data, env={})
    account = config.alipay.accounts["main"]
    assert account.approved_by_operator and account.seller_email == "refunds@example.com"
    assert (config.approval.reminder_after_seconds, config.approval.reminder_url) == (3600, None)
    assert not parse_config(minimal(), env={}).alipay.accounts["main"].approved_by_operator
