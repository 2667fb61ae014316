"""The XML the gateway answers with (§3.1): the synchronous ack of a refund request, and the safe reading of an
<alipay> document that the query's XML form shares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element, ParseError

from defusedxml import ElementTree as SafeElementTree

from .wire import CODE, CODE_RULE, AlipayFormatError, charset_codec, check_token

AckStatus = Literal["T", "F", "P"]
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
_DECLARED_ENCODING = re.compile(rb"\A\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_ACK_STATUSES: Mapping[str, AckStatus] = {"T": "T", "F": "F", "P": "P"}


def _parse_xml(body: bytes | str, field: str) -> Element:
    """Parse Alipay's XML safely; ElementTree refuses the multi-byte GBK declaration, so decode first."""
    if isinstance(body, bytes):
        declared = _DECLARED_ENCODING.match(body)
        try:
            body = body.decode(charset_codec(declared[1].decode() if declared else "utf-8"))
        except (AlipayFormatError, UnicodeDecodeError):
            raise AlipayFormatError(field, "is not in its declared encoding (utf-8, gbk, gb2312)") from None
    if not isinstance(body, str):
        raise AlipayFormatError(field, "must be bytes or str")
    try:
        return SafeElementTree.fromstring(_XML_DECLARATION.sub("", body.lstrip("\ufeff"), count=1))
    except (ParseError, ValueError) as exc:  # defusedxml's refusals are ValueErrors
        raise AlipayFormatError(field, f"is not acceptable XML ({exc})") from None


def child_text(root: Element, tag: str, field: str) -> str | None:
    """The stripped text of an optional, non-repeated child."""
    children = root.findall(tag)
    if len(children) > 1:
        raise AlipayFormatError(field, f"<{tag}> appears {len(children)} times")
    return (children[0].text or "").strip() if children else None


def alipay_root(body: bytes | str, field: str) -> Element:
    """Both XML answers are an <alipay> document."""
    root = _parse_xml(body, field)
    if root.tag != "alipay":
        raise AlipayFormatError(field, f"root element is <{root.tag}>, not <alipay>")
    return root


@dataclass(frozen=True)
class Ack:
    """The synchronous answer: T accepted (the notify decides), F refused with `error`, P processing."""

    status: AckStatus
    error: str | None = None


def _ack(status: str | None, error: str | None) -> Ack:
    """An error code comes with F and only with F; anything else is not an answer we understand."""
    if status not in _ACK_STATUSES:
        raise AlipayFormatError("ack", "is_success must be T, F or P")
    if (status == "F") != (error is not None):
        raise AlipayFormatError("ack", "an <error> code comes with F and only with F")
    if error is not None:
        check_token(error, "ack", CODE, f"error {CODE_RULE}")
    return Ack(_ACK_STATUSES[status], error)


def render_ack(status: str, error: str | None = None) -> bytes:
    """The GBK XML Alipay answers a refund request with (for the simulated gateway)."""
    ack = _ack(status, error)
    error_xml = f"<error>{ack.error}</error>" if ack.error is not None else ""
    body = f"<alipay><is_success>{ack.status}</is_success>{error_xml}</alipay>"
    return f'<?xml version="1.0" encoding="GBK"?>{body}'.encode("gbk")


def parse_ack(body: bytes) -> Ack:
    """Read the synchronous answer; anything unexpected is an error, to be resolved by the query."""
    root = alipay_root(body, "ack")
    return _ack(child_text(root, "is_success", "ack"), child_text(root, "error", "ack"))
