"""What Alipay's OpenAPI answers mean for a refund: the one table of codes, each with its meaning and effect.

`code` is the gateway's (10000 success, 20000 unavailable, 4000x refused); a refused call names a `sub_code`
(`ACQ.*` for the trade API, `isv.*`/`aop.*`/`isp.*` for the gateway). Sources: §9 of the protocol reference
and Alipay's public error tables. A code not in the table is taken as a final refusal only when it is an
`ACQ.*` business code under 40004; anything else unexpected is unknown, and the query settles it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType


class Effect(enum.Enum):
    """What a code proves about the refund."""

    FAILED = "failed"  # refused for good: nothing was refunded, resending will not help
    UNKNOWN = "unknown"  # may or may not have been refunded: the query decides
    RATE_LIMITED = "rate_limited"  # refused at the door for calling too often: back off, send the same again


@dataclass(frozen=True)
class ErrorCode:
    code: str
    meaning: str  # Alipay's own words (the dashboard shows them, and an English rendering: web/labels.py)
    effect: Effect


SUCCESS = "10000"
UNAVAILABLE = "20000"  # 服务不可用: the call may have run
BUSINESS_FAILED = "40004"
CALL_LIMITED = "40005"  # 调用频次超限
SYSTEM_ERROR = "ACQ.SYSTEM_ERROR"

_TABLE = (
    ErrorCode(SYSTEM_ERROR, "系统异常", Effect.UNKNOWN),
    ErrorCode(UNAVAILABLE, "服务不可用", Effect.UNKNOWN),
    ErrorCode("isp.unknow-error", "服务暂不可用（业务系统）", Effect.UNKNOWN),
    ErrorCode("aop.unknow-error", "服务暂不可用（网关）", Effect.UNKNOWN),
    # The same out_request_no with other parameters: an earlier send exists; what it did, the query says.
    ErrorCode("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求", Effect.UNKNOWN),
    ErrorCode(CALL_LIMITED, "调用频次超限", Effect.RATE_LIMITED),
    ErrorCode("isv.app-call-limited", "应用调用次数超限", Effect.RATE_LIMITED),
    ErrorCode("isv.method-call-limited", "API调用次数超限", Effect.RATE_LIMITED),
    ErrorCode("ACQ.INVALID_PARAMETER", "参数无效", Effect.FAILED),
    ErrorCode("ACQ.ACCESS_FORBIDDEN", "无权限使用接口", Effect.FAILED),
    ErrorCode("ACQ.PARTNER_ERROR", "应用APP_ID填写错误", Effect.FAILED),
    ErrorCode("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足", Effect.FAILED),
    ErrorCode("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限", Effect.FAILED),
    ErrorCode("ACQ.REASON_TRADE_BEEN_FREEZEN", "请求退款的交易被冻结", Effect.FAILED),
    ErrorCode("ACQ.TRADE_NOT_EXIST", "交易不存在", Effect.FAILED),
    ErrorCode("ACQ.TRADE_HAS_FINISHED", "交易已完结", Effect.FAILED),
    ErrorCode("ACQ.TRADE_STATUS_ERROR", "交易状态非法", Effect.FAILED),
    ErrorCode("ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额无效", Effect.FAILED),
    ErrorCode("ACQ.TRADE_NOT_ALLOW_REFUND", "当前交易不允许退款", Effect.FAILED),
    ErrorCode("ACQ.REFUND_FEE_ERROR", "交易退款金额有误", Effect.FAILED),
    ErrorCode("ACQ.CURRENCY_NOT_SUPPORT", "币种不支持", Effect.FAILED),
)
ERRORS = MappingProxyType({entry.code: entry for entry in _TABLE})


def error_code(code: str, sub_code: str | None) -> ErrorCode:
    """The entry for an answer that is not a success: its sub_code's, else its code's, else a default."""
    for name in (sub_code, code):
        if name and name in ERRORS:
            return ERRORS[name]
    if code == BUSINESS_FAILED and sub_code and sub_code.startswith("ACQ."):
        return ErrorCode(sub_code, "业务处理失败", Effect.FAILED)  # a business code not in the table
    return ErrorCode(sub_code or code or "UNKNOWN", f"unexpected answer {code or '(no code)'}", Effect.UNKNOWN)
