"""Alipay's error codes (§3.2): what each means, where it shows up, and whether retrying can help."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class ErrorCode:
    """What an Alipay code means, where it shows up (S sync ack, D per detail), and whether it is final."""

    code: str
    meaning: str
    where: frozenset[str]
    final: bool

    @property
    def one_detail_may_cause(self) -> bool:
        """Whether a synchronous refusal with this code may come from one detail alone (see _DETAIL_SYNC)."""
        return self.final and (self.code in _DETAIL_SYNC or "D" in self.where)


_S = frozenset({"S"})
_D = frozenset({"D"})
_SD = frozenset({"S", "D"})
# (I) The one place that decides retries. Not final: a transient Alipay state, so the same request
# (sync: same batch_no, same day) or the same refund in a later batch (per detail) can succeed, or,
# for DUPLICATE_BATCH_NO and REFUND_NOT_EXIST, the batch is to be resolved by notify/query, not failed.
# Everything else is final: repeating the identical request gets the identical answer (bad data, no
# contract, wrong key, insufficient balance...) and a person must act; failing beats retrying blindly.
_NOT_FINAL = frozenset(
    {
        "SYSTEM_ERROR",
        "SESSION_TIMEOUT",
        "ANTI_PHISHING_KEY_TIMEOUT",
        "BATCH_REFUND_LOCK_ERROR",
        "DUPLICATE_BATCH_NO",
        "REFUND_NOT_EXIST",
    }
)
# (I) The synchronous refusals one detail can cause: the detail_data rules of §1.4 (a detail's format, its
# reason's length or charset, a royalty or trade_no repeated), and any per-detail (D) code, since which codes
# Alipay answers synchronously is left open (§12). The answer never says which detail: the engine finds it by
# splitting the batch. Any other final code (a bad signature, a seller not allowed...) refuses the whole batch.
_DETAIL_SYNC = frozenset(
    {
        "DETAIL_DATA_FORMAT_ERROR",
        "SINGLE_DETAIL_DATA_EXCEED_LIMIT",
        "SINGLE_DETAIL_DATA_ENCODING_NOT_SUPPORT",
        "BATCH_MEMO_LENGTH_EXCEED_LIMIT",
        "DUBL_ROYALTY_IN_DETAIL",
        "DUBL_TRADE_NO_IN_SAME_BATCH",
    }
)
_ERROR_TABLE: tuple[tuple[str, str, frozenset[str]], ...] = (
    # gateway / common
    ("ILLEGAL_SIGN", "签名不正确", _S),
    ("ILLEGAL_DYN_MD5_KEY", "动态密钥信息错误", _S),
    ("ILLEGAL_ENCRYPT", "加密不正确", _S),
    ("ILLEGAL_ARGUMENT", "参数不正确", _S),
    ("ILLEGAL_SERVICE", "Service参数不正确", _S),
    ("ILLEGAL_USER", "用户ID不正确", _S),
    ("ILLEGAL_PARTNER", "合作伙伴ID不正确", _S),
    ("ILLEGAL_EXTERFACE", "接口配置不正确", _S),
    ("ILLEGAL_PARTNER_EXTERFACE", "合作伙伴接口信息不正确", _S),
    ("ILLEGAL_SECURITY_PROFILE", "未找到匹配的密钥配置", _S),
    ("ILLEGAL_AGENT", "代理ID不正确", _S),
    ("ILLEGAL_SIGN_TYPE", "签名类型不正确", _S),
    ("ILLEGAL_CHARSET", "字符集不合法", _S),
    ("ILLEGAL_CLIENT_IP", "客户端IP地址无权访问服务", _S),
    ("HAS_NO_PRIVILEGE", "无权访问", _S),
    ("SESSION_TIMEOUT", "session超时", _S),
    ("ILLEGAL_DIGEST_TYPE", "摘要类型不正确", _S),
    ("ILLEGAL_DIGEST", "文件摘要不正确", _S),
    ("ILLEGAL_FILE_FORMAT", "文件格式不正确", _S),
    ("ILLEGAL_TARGET_SERVICE", "错误的target_service", _S),
    ("ILLEGAL_ACCESS_SWITCH_SYSTEM", "partner不允许访问该类型的系统", _S),
    ("ILLEGAL_ENCODING", "不支持该编码类型", _S),
    ("EXTERFACE_IS_CLOSED", "接口已关闭", _S),
    ("ILLEGAL_REQUEST_REFERER", "防钓鱼检查相关", _S),
    ("ILLEGAL_ANTI_PHISHING_KEY", "防钓鱼检查相关", _S),
    ("ANTI_PHISHING_KEY_TIMEOUT", "防钓鱼检查相关", _S),
    ("ILLEGAL_EXTER_INVOKE_IP", "防钓鱼检查相关", _S),
    # business
    ("BATCH_NUM_EXCEED_LIMIT", "总笔数大于1000", _S),
    ("REFUND_DATE_ERROR", "错误的退款时间", _S),
    ("BATCH_NUM_ERROR", "传入的总笔数格式错误", _S),
    ("BATCH_NUM_NOT_EQUAL_TOTAL", "传入的退款条数不等于数据集解析出的退款条数", _S),
    ("SINGLE_DETAIL_DATA_EXCEED_LIMIT", "单笔退款明细超出限制", _S),
    ("DUBL_TRADE_NO_IN_SAME_BATCH", "同一批退款中存在两条相同的退款记录", _S),
    ("DUBL_ROYALTY_IN_DETAIL", "同一条明细中存在两条转入转出账户相同的分润信息", _S),
    ("DUPLICATE_BATCH_NO", "重复的批次号", _S),
    ("BATCH_NO_FORMAT_ERROR", "批次号格式错误", _S),
    ("RESULT_BATCH_NO_FORMAT_ERROR", "批次号格式错误", _S),
    ("DETAIL_DATA_FORMAT_ERROR", "数据集参数格式错误", _S),
    ("SINGLE_DETAIL_DATA_ENCODING_NOT_SUPPORT", "单条数据集编码集不支持", _S),
    ("INVALID_CHARACTER_SET", "字符集无效", _S),
    ("BATCH_MEMO_LENGTH_EXCEED_LIMIT", "备注长度超过256字节", _S),
    ("SELLER_INFO_NOT_EXIST", "卖家信息不存在", _S),
    ("SELLER_STATUS_NOT_ALLOW", "卖家状态不正常", _S),
    ("PARTNER_NOT_SIGN_PROTOCOL", "平台商未签署协议", _S),
    ("SELLER_NOT_SIGN_PROTOCOL", "卖家未签署协议", _S),
    ("ACCOUNT_NOT_EXISTS", "账号不存在", _D),
    ("EMAIL_USERID_NOT_MATCH", "Email和用户ID不匹配", _D),
    ("CA_USER_NOT_USE_CA", "数字证书用户但未使用数字证书登录", _S),
    ("BATCH_REFUND_LOCK_ERROR", "同一时间不允许进行多笔并发退款", _D),
    ("NOT_THIS_SELLER_TRADE", "不是当前卖家的交易", _D),
    ("NOT_THIS_PARTNERS_TRADE", "退款明细非本合作伙伴的交易", _D),
    ("TRADE_NOT_EXISTS", "交易不存在", _D),
    ("TRADE_STATUS_ERROR", "交易状态不允许退款", _D),
    ("TRADE_HAS_CLOSED", "交易已关闭，不允许退款", _D),
    ("TRADE_HAS_FINISHED", "交易已结束，不允许退款", _D),
    ("WHOLE_DETAIL_FORBID_REFUND", "整条退款明细都禁止退款", _D),
    ("TRADE_PRODUCT_TYPE_NOT_ALLOW_REFUND", "交易类型不允许退交易", _D),
    ("REFUND_AMOUNT_NOT_VALID", "退款金额不合法", _D),
    ("REFUND_TRADE_FEE_ERROR", "退交易金额不合法", _D),
    ("REASON_TRADE_REFUND_FEE_ERR", "退款金额错误", _D),
    ("REASON_HAS_REFUND_FEE_NOT_MATCH", "已退款金额错误", _D),
    ("REASON_REFUND_AMOUNT_LESS_THAN_COUPON_FEE", "红包无法部分退款", _D),
    ("REFUND_SUBTRADE_FEE_ERROR", "退子交易金额不合法", _D),
    ("REFUND_ROYALTY_FEE_ERROR", "退分润金额不合法", _D),
    ("ROYALTYER_NOT_SIGN_PROTOCOL", "分润方未签署三方协议", _D),
    ("REASON_REFUND_ROYALTY_ERROR", "退分润错误/失败", _D),
    ("DUP_ROYALTY_REFUND_ITEM", "重复的退分润条目", _D),
    ("NO_REFUND_CHARGE_PRIVILEDGE", "没有退收费的权限", _D),
    ("REFUND_CHARGE_FEE_ERROR", "退收费金额不合法", _D),
    ("REFUND_CHARGE_FEE_GREATER_THAN_LIMIT", "退收费金额超过限制", _D),
    ("REASON_REFUND_CHARGE_ERR", "退收费失败", _D),
    ("RESULT_AMOUNT_NOT_VALID", "退收费、退分润或者退款的金额错误", _D),
    ("RESULT_ACCOUNT_NO_NOT_VALID", "账号无效", _D),
    ("RESULT_FACE_AMOUNT_NOT_VALID", "票面价相关（航空）", _D),
    ("NANHANG_REFUND_CHARGE_AMOUNT_ERROR", "票面价相关（航空）", _D),
    ("TXN_RESULT_ACCOUNT_STATUS_NOT_VALID", "卖家账户状态无效或被冻结", _D),
    ("TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH", "卖家账户余额不足", _D),
    ("BUYER_ERROR", "因买家支付宝账户问题不允许退款", _D),
    ("PWD_REFUND_NOT_ALLOW_ROYALTY", "有密接口不允许退分润", _S),
    ("SYSTEM_ERROR", "支付宝系统错误（联系技术支持）", _SD),
    ("BATCH_REFUND_STATUS_ERROR", "退款记录状态错误", _D),
    ("BATCH_REFUND_DATA_ERROR", "批量退款后数据检查错误", _D),
    ("REFUND_TRADE_FAILED", "不存在退交易，但是退收费和退分润失败", _D),
    ("REFUND_FAIL", "退款失败（仅意外数据恢复时出现）", _D),
    # refund_fastpay_query's error_code (§6)
    ("REFUND_NOT_EXIST", "退款记录不存在（查询）", _S),
)
ERROR_CODES: Mapping[str, ErrorCode] = MappingProxyType(
    {code: ErrorCode(code, meaning, where, code not in _NOT_FINAL) for code, meaning, where in _ERROR_TABLE}
)


def error_code(code: str) -> ErrorCode:
    """Look a code up; an unknown one is final, since retrying what we do not understand is a guess."""
    return ERROR_CODES.get(code) or ErrorCode(code, "unknown code", _SD, final=True)
