"""Reading a gateway answer: `{"<method>_response": {...}, "sign": "..."}`.

The signature covers the `*_response` node's text exactly as it appears in the body (spacing, key order and
escapes included), so the node is cut out of the raw text by walking the top-level object with the JSON
decoder itself (a value's end is where the decoder stops, whatever braces its strings hold), then parsed.
A body that holds the node twice is refused: which one was signed would be a guess. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ERROR_NODE = "error_response"  # what the gateway answers instead when it refuses a call before the method runs
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class ResponseFormatError(ValueError):
    """The body is not a gateway answer we can read (not JSON, no response node, a node twice)."""


@dataclass(frozen=True)
class RawResponse:
    """One answer: the node's name, its raw text (what `sign` covers), its parsed fields, and `sign` if any."""

    node_name: str
    text: str
    fields: dict[str, Any]
    sign: str | None


def response_node(method: str) -> str:
    """`alipay.trade.refund` -> `alipay_trade_refund_response`."""
    return method.replace(".", "_") + "_response"


def _skip(body: str, index: int) -> int:
    while index < len(body) and body[index] in _WHITESPACE:
        index += 1
    return index


def _members(body: str) -> dict[str, tuple[int, int]]:
    """Each top-level key of the object in `body` and the (start, end) of its value's raw text."""
    index = _skip(body, 0)
    if body[index : index + 1] != "{":
        raise ResponseFormatError("the body is not a JSON object")
    spans: dict[str, tuple[int, int]] = {}
    index = _skip(body, index + 1)
    if body[index : index + 1] == "}":
        return spans
    while True:
        try:
            key, index = _DECODER.raw_decode(body, index)
            index = _skip(body, index)
            if body[index : index + 1] != ":" or not isinstance(key, str):
                raise ResponseFormatError("a member of the body is not `key: value`")
            start = _skip(body, index + 1)
            _, end = _DECODER.raw_decode(body, start)
        except json.JSONDecodeError as exc:
            raise ResponseFormatError(f"the body is not JSON: {exc.msg} at {exc.pos}") from None
        if key in spans:
            raise ResponseFormatError(f"{key} appears twice in the body")
        spans[key] = (start, end)
        index = _skip(body, end)
        separator = body[index : index + 1]
        if separator == "}":
            return spans
        if separator != ",":
            raise ResponseFormatError(f"the body is not JSON: expected , or }} at {index}")
        index = _skip(body, index + 1)


def read_response(body: str, method: str) -> RawResponse:
    """The method's node (or the gateway's `error_response`) with its raw text and the body's `sign`."""
    spans = _members(body)
    name = response_node(method)
    if name not in spans:
        name = ERROR_NODE
    if name not in spans:
        raise ResponseFormatError(f"no {response_node(method)} in the body")
    start, end = spans[name]
    text = body[start:end]
    fields = json.loads(text)
    if not isinstance(fields, dict):
        raise ResponseFormatError(f"{name} is not an object")
    sign = None
    if "sign" in spans:
        sign_start, sign_end = spans["sign"]
        value = json.loads(body[sign_start:sign_end])
        sign = value if isinstance(value, str) and value else None
    return RawResponse(name, text, fields, sign)


def render_node(fields: dict[str, Any]) -> str:
    """A node's text as the gateway writes it (compact, UTF-8 kept): what the sandbox signs."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def render_body(node_name: str, text: str, sign: str | None) -> str:
    """The body carrying a node's text unchanged, and `sign` when the answer is signed."""
    body = "{" + json.dumps(node_name) + ":" + text
    return body + (',"sign":' + json.dumps(sign) if sign is not None else "") + "}"
