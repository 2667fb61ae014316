"""`/alipay/notify` and `/alipay/dback-notify`, by POST and GET, fuzzed over raw HTTP against the whole loop: forged
notifies from anyone, and notifies signed with the account's key (and confirmed by the sandbox's `notify_verify`)
carrying malformed results. By Alipay's protocol the answer is the plain text `fail` or `success`."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from refund_adapter.channels.mapi.notify import NOTIFY_TYPE_REFUND
from refund_adapter.channels.mapi.wire import format_alipay_time
from refund_adapter.channels.signing import MD5Scheme, signed
from refund_adapter.money import beijing_now

from .harness import MD5_KEY, PAID_TRADE, Submitted, exchange, fuzz, request_bytes, server_randomness
from .strategies import amount_text, any_text, hostile_headers, integer_text, percent_encoded, raw_value

pytestmark = server_randomness

PATHS = {"refund": b"/alipay/notify", "dback": b"/alipay/dback-notify"}
FORM = (b"Content-Type", b"application/x-www-form-urlencoded; charset=utf-8")
NAMES = [b"batch_no", b"refund_batch_no", b"notify_id", b"notify_type", b"sign", b"sign_type", b"result_details",
         b"success_num", b"notify_time", b"trade_no", b"status", b"_input_charset"]


def notify(submitted: Submitted, path: bytes, method: bytes, raw: bytes, headers: list[tuple[bytes, bytes]],
           family: str) -> None:
    target, body = (path + b"?" + raw, b"") if method == b"GET" else (path, raw)
    answer = exchange(submitted.app, logs_fixture(), family, request_bytes(method, target, headers, body),
                      notify=True)
    assert answer.status in (200, 400, 413, 417), answer  # 417: an Expect other than 100-continue


_logs: list[pytest.LogCaptureFixture] = []


def logs_fixture() -> pytest.LogCaptureFixture:
    return _logs[-1]


@pytest.fixture(autouse=True)
def _keep_logs(logs: pytest.LogCaptureFixture) -> None:
    _logs.append(logs)


@pytest.mark.parametrize("kind", sorted(PATHS))
@pytest.mark.parametrize("method", [b"POST", b"GET"])
@fuzz
@given(pairs=st.lists(st.tuples(st.sampled_from(NAMES), st.one_of(raw_value, percent_encoded)), max_size=8),
       real_batch=st.booleans(), content_type=st.sampled_from([FORM, (b"Content-Type", b"application/json"),
                                                               (b"Content-Type", b"\xff"), (b"X-None", b"")]),
       extra=hostile_headers)
@example(pairs=[(b"batch_no", b"9" * 60_000)], real_batch=False,
         content_type=FORM, extra=[])  # a 60 KB batch_no quoted whole in the log line
def test_forged(notify_app: Submitted, kind: str, method: bytes, pairs: list[tuple[bytes, bytes]], real_batch: bool,
                content_type: tuple[bytes, bytes], extra: list[tuple[bytes, bytes]]) -> None:
    """Anyone's notify: any keys (repeated ones too), any bytes, the real batch_no or not; never believed."""
    if real_batch:
        field = b"batch_no" if kind == "refund" else b"refund_batch_no"
        pairs = [(field, notify_app.batch_no.encode()), *pairs]
    raw = b"&".join(name + b"=" + value.replace(b"&", b"").replace(b" ", b"+") for name, value in pairs)
    if method == b"GET":
        raw = raw.replace(b"#", b"")
    notify(notify_app, PATHS[kind], method, raw, [content_type, *extra],
           f"alipay {kind} notify (forged, {method.decode()})")


def mostly(value: str, other: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """`value` four times in five: hostile in one field at a time, so the checks after it are reached too."""
    return st.integers(0, 4).flatmap(lambda n: other if n == 0 else st.just(value))


def signed_form(params: dict[str, str], charset: str) -> bytes:
    """A form signed as Alipay signs it, in `charset`; what `charset` cannot encode becomes "?" first (Alipay
    could not have signed it either)."""
    sendable = {name: value.encode(charset, "replace").decode(charset) for name, value in params.items()}
    return urlencode(signed(sendable, MD5Scheme(MD5_KEY, charset)), encoding=charset).encode()


def result_item(submitted: Submitted) -> st.SearchStrategy[str]:
    trade = st.one_of(st.just(PAID_TRADE), st.just(PAID_TRADE + "\n"), any_text)
    amount = st.one_of(st.just(submitted.amount), amount_text)
    code = st.one_of(st.just("SUCCESS"), st.sampled_from(["TRADE_HAS_CLOSED", "", "S^", "$"]), any_text)
    return st.one_of(st.tuples(trade, amount, code).map("^".join), any_text)


@fuzz
@given(data=st.data(), method=st.sampled_from([b"POST", b"GET"]), charset=st.sampled_from(["utf-8", "utf-8", "gbk"]))
def test_signed_refund_notify(notify_app: Submitted, data: st.DataObject, method: bytes, charset: str) -> None:
    """Signed with the account's key, about the real batch, with a notify_id the sandbox confirms: the results
    may still be malformed in every way; a malformed notify is `fail` and records nothing."""
    items = data.draw(st.lists(result_item(notify_app), min_size=1, max_size=4), label="items")
    params = {
        "notify_time": data.draw(mostly(format_alipay_time(beijing_now()), any_text), label="time"),
        "notify_type": data.draw(mostly(NOTIFY_TYPE_REFUND, any_text), label="type"),
        "notify_id": data.draw(mostly(notify_app.notify_ids["batch_refund_notify"], any_text), label="id"),
        "batch_no": notify_app.batch_no,
        "success_num": data.draw(st.one_of(st.sampled_from(["0", "1"]), integer_text), label="success_num"),
        "result_details": data.draw(st.sampled_from(["#", "$", "|"]), label="separator").join(items),
    }
    notify(notify_app, PATHS["refund"], method, signed_form(params, charset), [FORM], "alipay refund notify (signed)")


@fuzz
@given(data=st.data(), method=st.sampled_from([b"POST", b"GET"]))
def test_signed_dback_notify(notify_app: Submitted, data: st.DataObject, method: bytes) -> None:
    params = {
        "notify_id": data.draw(mostly(notify_app.notify_ids["dback_notify"], any_text), label="id"),
        "refund_batch_no": notify_app.batch_no,
        "trade_no": data.draw(mostly(PAID_TRADE, any_text), label="trade_no"),
        "refund_id": data.draw(mostly("1" * 20, any_text), label="refund_id"),
        "status": data.draw(st.one_of(st.sampled_from("SFIP"), any_text), label="status"),
        "notify_time": data.draw(mostly(format_alipay_time(beijing_now()), any_text), label="time"),
        **data.draw(st.dictionaries(st.sampled_from(["card_no", "bank_name", "extra"]), any_text), label="more"),
    }
    notify(notify_app, PATHS["dback"], method, signed_form(params, "utf-8"), [FORM], "alipay dback notify (signed)")


def test_a_signed_notify_id_of_8_kb_is_refused_before_notify_verify(notify_app: Submitted) -> None:
    """Found by the fuzzer: the notify_id of a signed notify went unchecked to notify_verify, an 8 KB URL."""
    params = {"notify_id": "x" * 8122, "refund_batch_no": notify_app.batch_no, "trade_no": PAID_TRADE,
              "refund_id": "1" * 20, "status": "S"}
    notify(notify_app, PATHS["dback"], b"POST", signed_form(params, "utf-8"), [FORM], "alipay dback notify (signed)")


def test_after_all_that_the_genuine_notify_is_accepted(notify_app: Submitted) -> None:
    """The fuzzers left the refund as it was: the notify Alipay would have sent is recorded, `success`."""
    params = {"notify_time": format_alipay_time(beijing_now()), "notify_type": NOTIFY_TYPE_REFUND,
              "notify_id": notify_app.notify_ids["batch_refund_notify"], "batch_no": notify_app.batch_no,
              "success_num": "1", "result_details": f"{PAID_TRADE}^{notify_app.amount}^SUCCESS"}
    answer = exchange(notify_app.app, logs_fixture(), "alipay refund notify (signed)",
                      request_bytes(b"POST", PATHS["refund"], [FORM], signed_form(params, "utf-8")), notify=True)
    assert answer.body == b"success"
