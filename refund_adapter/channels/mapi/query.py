"""`refund_fastpay_query`'s answer (§6): T with result items, or F with an error code; plain text or XML."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from urllib.parse import unquote

from .ack import alipay_root, child_text
from .results import QueryItem, decode_query_result_details, encode_query_result_details
from .wire import CODE, CODE_RULE, AlipayFormatError, charset_codec, check_token


@dataclass(frozen=True)
class QueryResponse:
    """`refund_fastpay_query`'s answer: T with items, or F with an error code."""

    is_success: bool
    items: tuple[QueryItem, ...] = ()
    error_code: str | None = None


def render_query_response(response: QueryResponse) -> str:
    """The plain-text answer of §6, values raw (they contain neither `&` nor `%`)."""
    if response.is_success is True and response.error_code is None:
        if not response.items:
            return "is_success=T"
        return f"is_success=T&result_details={encode_query_result_details(response.items)}"
    if response.is_success is False and not response.items:
        return f"is_success=F&error_code={check_token(response.error_code, 'error_code', CODE, CODE_RULE)}"
    raise AlipayFormatError("query", "is_success T takes items, F takes an error_code and no items")


def _is_xml(body: bytes | str) -> bool:
    """Some eras answered the query in XML; sniff the first character."""
    if isinstance(body, bytes):
        return body.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"<")
    return isinstance(body, str) and body.lstrip("\ufeff \t\r\n").startswith("<")


def _plain_fields(body: bytes | str, codec: str) -> dict[str, str]:
    """Split `k=v&k=v`; values may be raw or percent-encoded in the charset."""
    try:
        text = body.decode(codec) if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise AlipayFormatError("query", f"is not {codec} text") from None
    if not isinstance(text, str):
        raise AlipayFormatError("query", "must be bytes or str")
    fields: dict[str, str] = {}
    for pair in text.strip().split("&"):
        key, equals, value = pair.partition("=")
        if not equals or key in fields:
            raise AlipayFormatError("query", f"{pair[:40]!r} is not a new key=value pair")
        try:
            fields[key] = unquote(value, encoding=codec, errors="strict")
        except UnicodeDecodeError:
            raise AlipayFormatError(f"query.{key}", f"is not percent-encoded {codec}") from None
    return fields


def _xml_fields(body: bytes | str) -> dict[str, str]:
    """<alipay><is_success/><result_details/>|<error/></alipay> as the plain-text keys."""
    root = alipay_root(body, "query")
    tags = {"is_success": "is_success", "result_details": "result_details", "error_code": "error"}
    fields = {key: child_text(root, tag, "query") for key, tag in tags.items()}
    return {key: value for key, value in fields.items() if value is not None}


def parse_query_response(body: bytes | str, charset: str = "utf-8") -> QueryResponse:
    """Read `refund_fastpay_query`'s answer, plain text or XML."""
    codec = charset_codec(charset)
    fields = _xml_fields(body) if _is_xml(body) else _plain_fields(body, codec)
    status = fields.get("is_success")
    if status == "T":
        details = fields.get("result_details", "")
        return QueryResponse(True, tuple(decode_query_result_details(details)) if details else ())
    if status == "F":
        code = check_token(fields.get("error_code"), "error_code", CODE, CODE_RULE)
        return QueryResponse(False, error_code=code)
    raise AlipayFormatError("is_success", "must be T or F")
