"""Hostile input, as hypothesis strategies: what anyone can send, and what a shop's own bugs send signed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# --- text and bytes ------------------------------------------------------------------------------------------

CJK = "退款原因：商品损坏"  # GBK-encodable, so it can arrive as GBK where UTF-8 is expected
LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "a\ud83d", "\ude00z"])
# Characters that are digits or look like them to some parser: full-width, superscript, Arabic-Indic, ...
DIGIT_LOOKALIKES = st.sampled_from(["１", "２３", "²", "٣", "߁", "𝟡", "Ⅻ", "〇"])

ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
any_text = st.one_of(
    ascii_text,
    st.text(max_size=40),  # every code point hypothesis draws, lone surrogates included
    LONE_SURROGATES,
    DIGIT_LOOKALIKES,
    st.just(CJK),
    st.builds(lambda n: "x" * n, st.integers(1000, 70_000)),  # past every bound we set on a log line
    st.sampled_from(["", " ", "\n", "a\nb", "\x00", "\u2028", "null", "NaN", "-0", "'\"\\", "%ff", "%00"]),
)


def _encodings(text: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from([
        text.encode("utf-8", "surrogatepass"),
        text.encode("gbk", "replace"),
        text.encode("latin-1", "replace"),
    ])


# Header values and query/path pieces as raw bytes: UTF-8, GBK, Latin-1, and bytes that are none of them.
# Never CR or LF: those end the header (a different request, not a different value).
raw_value = st.one_of(
    any_text.flatmap(_encodings),
    st.binary(max_size=40),
).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
percent_encoded = st.binary(max_size=30).map(lambda raw: "".join(f"%{b:02X}" for b in raw).encode())
path_piece = st.one_of(raw_value.map(lambda raw: raw.replace(b" ", b"").replace(b"?", b"")), percent_encoded,
                       st.sampled_from([b"..", b"%2e%2e", b"//", b"%2F", b"\\", b"~"]))

# --- numbers -------------------------------------------------------------------------------------------------

huge_digits = st.integers(20, 6000).map(lambda n: "9" * n)  # past 64 bits, and past int()'s 4300 digits
integer_text = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    huge_digits,
    DIGIT_LOOKALIKES,
    st.sampled_from(["0", "-1", "+1", "1.0", "1e3", "0x10", " 1", "1 ", "1_000", "", "9223372036854775807",
                     "9223372036854775808", "18446744073709551616"]),
)
json_integer = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(20, 6000).map(lambda n: json.loads("9" * min(n, 4000))),
    st.floats(allow_nan=False),
    st.booleans(),
    integer_text,
)
amount_text = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
    st.decimals(min_value=-1000, max_value=1000, places=2).map(str),
    st.integers(1, 30).map(lambda n: "1." + "1" * n),  # many decimals
    huge_digits,
    DIGIT_LOOKALIKES,
    st.sampled_from(["0", "0.00", "-1.00", "-0", "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "1e2",
                     "1E-2", "0x10", "１２.３０", "12.30\n", " 12.30", "12,30", "12.3.0", "1_0.00", "100.00",
                     "100.01", "200.00", "99999999999.99", "999999999999999.99", ".5", "5.", "+5"]),
)
json_amount = st.one_of(amount_text, st.floats(), st.integers(-(2**70), 2**70), st.none(), st.booleans())

# --- JSON documents ------------------------------------------------------------------------------------------

json_scalar = st.one_of(st.none(), st.booleans(), json_integer, st.floats(), any_text)
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)), max_leaves=12)


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def dumps(document: Any) -> bytes:
    """JSON bytes even for lone surrogates (escaped as JSON allows) and NaN (which JSON does not)."""
    return json.dumps(document).encode()


def hostile_document(base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[bytes]:
    """A body: `base` with some fields replaced, removed or added (any JSON), or a body that is barely JSON."""
    replaced = st.fixed_dictionaries({}, optional={name: strategy for name, strategy in fields.items()})
    edited = st.tuples(replaced, st.lists(st.sampled_from(sorted(base)), max_size=2),
                       st.dictionaries(any_text, json_value, max_size=2)).map(
        lambda parts: dumps({**{k: v for k, v in base.items() if k not in parts[1]}, **parts[0], **parts[2]}))
    return st.one_of(
        edited,
        edited.map(lambda raw: raw.decode().encode("gbk", "replace")),  # GBK where UTF-8 is expected
        json_value.map(dumps),
        st.integers(900, 200_000).map(deep),
        st.integers(900, 200_000).map(lambda n: b"[" * n + b"]" * n),
        st.binary(max_size=200),
        st.sampled_from([b"", b"{", b"null", b"[]", b"NaN", b'{"a": Infinity}', b"\xef\xbb\xbf{}", b'"\\ud800"',
                         b'{"\\ud800": 1}', b"\xed\xa0\x80", b"{}" * 2]),
    )


content_type = st.sampled_from([b"application/json", b"application/x-www-form-urlencoded", b"text/plain",
                                b"multipart/form-data; boundary=x", b"application/json; charset=gbk", b"\xff\xfe",
                                b"", b"application/json; charset=utf-16"])


# Headers any request may carry, hostile: any bytes, or values that make aiohttp treat the body differently.
ENCODINGS = [b"gzip", b"x-gzip", b"deflate", b"br", b"zstd", b"identity", b"gzip, deflate", b"compress", b"chunked"]
hostile_headers = st.lists(st.one_of(
    st.tuples(st.sampled_from([b"X-Any", b"User-Agent", b"Accept", b"Accept-Charset", b"Cookie", b"X-Forwarded-For",
                               b"Content-Language", b"Content-Encoding", b"Expect"]), raw_value),
    st.tuples(st.just(b"Content-Encoding"), st.sampled_from(ENCODINGS)),
    st.tuples(st.just(b"Expect"), st.sampled_from([b"100-continue", b"200-ok"])),
), max_size=3)
