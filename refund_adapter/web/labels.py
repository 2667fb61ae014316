"""What the dashboard calls things, in the catalogues' words: states, journal events, and every result code with
its meaning.

Alipay's codes carry their meaning in each protocol's error table (refund_adapter/channels/mapi/errors.py and
channels/openapi/errors.py, in Chinese).
Here each has its English rendering, marked for the catalogues; the Chinese catalogue holds the table's own words
for it (tests/test_labels.py checks that every code of the table is here and that the two never drift apart).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from .i18n import N_

# Alipay's codes (§3.2 of docs: the protocol's error table), plus the verdict and the codes this service gives.
CODE_MEANINGS: Final[Mapping[str, str]] = {
    "SUCCESS": N_("Refunded"),
    "ILLEGAL_SIGN": N_("The signature is wrong"),
    "ILLEGAL_DYN_MD5_KEY": N_("The dynamic key is wrong"),
    "ILLEGAL_ENCRYPT": N_("The encryption is wrong"),
    "ILLEGAL_ARGUMENT": N_("A parameter is wrong"),
    "ILLEGAL_SERVICE": N_("The service parameter is wrong"),
    "ILLEGAL_USER": N_("The user ID is wrong"),
    "ILLEGAL_PARTNER": N_("The partner ID is wrong"),
    "ILLEGAL_EXTERFACE": N_("The interface configuration is wrong"),
    "ILLEGAL_PARTNER_EXTERFACE": N_("The partner's interface information is wrong"),
    "ILLEGAL_SECURITY_PROFILE": N_("No matching key configuration was found"),
    "ILLEGAL_AGENT": N_("The agent ID is wrong"),
    "ILLEGAL_SIGN_TYPE": N_("The signature type is wrong"),
    "ILLEGAL_CHARSET": N_("The character set is not allowed"),
    "ILLEGAL_CLIENT_IP": N_("The client's IP address may not use the service"),
    "HAS_NO_PRIVILEGE": N_("No permission"),
    "SESSION_TIMEOUT": N_("The session timed out"),
    "ILLEGAL_DIGEST_TYPE": N_("The digest type is wrong"),
    "ILLEGAL_DIGEST": N_("The file digest is wrong"),
    "ILLEGAL_FILE_FORMAT": N_("The file format is wrong"),
    "ILLEGAL_TARGET_SERVICE": N_("Wrong target_service"),
    "ILLEGAL_ACCESS_SWITCH_SYSTEM": N_("The partner may not use this kind of system"),
    "ILLEGAL_ENCODING": N_("This encoding is not supported"),
    "EXTERFACE_IS_CLOSED": N_("The interface is closed"),
    "ILLEGAL_REQUEST_REFERER": N_("Anti-phishing check"),
    "ILLEGAL_ANTI_PHISHING_KEY": N_("Anti-phishing check"),
    "ANTI_PHISHING_KEY_TIMEOUT": N_("Anti-phishing check"),
    "ILLEGAL_EXTER_INVOKE_IP": N_("Anti-phishing check"),
    "BATCH_NUM_EXCEED_LIMIT": N_("More than 1000 refunds in the batch"),
    "REFUND_DATE_ERROR": N_("Wrong refund time"),
    "BATCH_NUM_ERROR": N_("The batch_num given is malformed"),
    "BATCH_NUM_NOT_EQUAL_TOTAL": N_("batch_num differs from the number of refunds in detail_data"),
    "SINGLE_DETAIL_DATA_EXCEED_LIMIT": N_("One refund's detail exceeds the limit"),
    "DUBL_TRADE_NO_IN_SAME_BATCH": N_("The batch holds the same refund twice"),
    "DUBL_ROYALTY_IN_DETAIL": N_("A detail holds two royalty entries between the same accounts"),
    "DUPLICATE_BATCH_NO": N_("Duplicate batch number"),
    "BATCH_NO_FORMAT_ERROR": N_("Malformed batch number"),
    "RESULT_BATCH_NO_FORMAT_ERROR": N_("Malformed batch number"),
    "DETAIL_DATA_FORMAT_ERROR": N_("Malformed detail_data"),
    "SINGLE_DETAIL_DATA_ENCODING_NOT_SUPPORT": N_("A detail's encoding is not supported"),
    "INVALID_CHARACTER_SET": N_("Invalid character set"),
    "BATCH_MEMO_LENGTH_EXCEED_LIMIT": N_("The memo is longer than 256 bytes"),
    "SELLER_INFO_NOT_EXIST": N_("The seller does not exist"),
    "SELLER_STATUS_NOT_ALLOW": N_("The seller's status is not normal"),
    "PARTNER_NOT_SIGN_PROTOCOL": N_("The platform partner has not signed the agreement"),
    "SELLER_NOT_SIGN_PROTOCOL": N_("The seller has not signed the agreement"),
    "ACCOUNT_NOT_EXISTS": N_("The account does not exist"),
    "EMAIL_USERID_NOT_MATCH": N_("The email and the user ID do not match"),
    "CA_USER_NOT_USE_CA": N_("A certificate user did not log in with the certificate"),
    "BATCH_REFUND_LOCK_ERROR": N_("Concurrent refunds at the same time are not allowed"),
    "NOT_THIS_SELLER_TRADE": N_("Not a trade of this seller"),
    "NOT_THIS_PARTNERS_TRADE": N_("The refunded trade is not this partner's"),
    "TRADE_NOT_EXISTS": N_("The trade does not exist"),
    "TRADE_STATUS_ERROR": N_("The trade's status does not allow a refund"),
    "TRADE_HAS_CLOSED": N_("The trade is closed: no refund allowed"),
    "TRADE_HAS_FINISHED": N_("The trade is finished: no refund allowed"),
    "WHOLE_DETAIL_FORBID_REFUND": N_("The whole refund detail is forbidden"),
    "TRADE_PRODUCT_TYPE_NOT_ALLOW_REFUND": N_("The trade's type does not allow a refund"),
    "REFUND_AMOUNT_NOT_VALID": N_("Invalid refund amount"),
    "REFUND_TRADE_FEE_ERROR": N_("Invalid trade refund amount"),
    "REASON_TRADE_REFUND_FEE_ERR": N_("Wrong refund amount"),
    "REASON_HAS_REFUND_FEE_NOT_MATCH": N_("Wrong amount already refunded"),
    "REASON_REFUND_AMOUNT_LESS_THAN_COUPON_FEE": N_("A red packet cannot be partly refunded"),
    "REFUND_SUBTRADE_FEE_ERROR": N_("Invalid sub-trade refund amount"),
    "REFUND_ROYALTY_FEE_ERROR": N_("Invalid royalty refund amount"),
    "ROYALTYER_NOT_SIGN_PROTOCOL": N_("The royalty party has not signed the three-party agreement"),
    "REASON_REFUND_ROYALTY_ERROR": N_("The royalty refund was wrong or failed"),
    "DUP_ROYALTY_REFUND_ITEM": N_("Duplicate royalty refund entry"),
    "NO_REFUND_CHARGE_PRIVILEDGE": N_("No permission to refund fees"),
    "REFUND_CHARGE_FEE_ERROR": N_("Invalid fee refund amount"),
    "REFUND_CHARGE_FEE_GREATER_THAN_LIMIT": N_("The fee refund exceeds the limit"),
    "REASON_REFUND_CHARGE_ERR": N_("The fee refund failed"),
    "RESULT_AMOUNT_NOT_VALID": N_("Wrong amount of a fee, royalty or refund"),
    "RESULT_ACCOUNT_NO_NOT_VALID": N_("Invalid account"),
    "RESULT_FACE_AMOUNT_NOT_VALID": N_("Face value (airlines)"),
    "NANHANG_REFUND_CHARGE_AMOUNT_ERROR": N_("Face value (airlines)"),
    "TXN_RESULT_ACCOUNT_STATUS_NOT_VALID": N_("The seller's account is invalid or frozen"),
    "TXN_RESULT_ACCOUNT_BALANCE_NOT_ENOUGH": N_("The seller's balance is not enough"),
    "BUYER_ERROR": N_("Not refundable because of the buyer's Alipay account"),
    "PWD_REFUND_NOT_ALLOW_ROYALTY": N_("The password interface does not allow royalty refunds"),
    "SYSTEM_ERROR": N_("Alipay system error (contact support)"),
    "BATCH_REFUND_STATUS_ERROR": N_("Wrong refund record status"),
    "BATCH_REFUND_DATA_ERROR": N_("The data check after the batch refund failed"),
    "REFUND_TRADE_FAILED": N_("No trade refund, but the fee and royalty refunds failed"),
    "REFUND_FAIL": N_("Refund failed (only after an unexpected data recovery)"),
    "REFUND_NOT_EXIST": N_("No such refund record (query)"),
    # Alipay OpenAPI's codes (refund_adapter/channels/openapi/errors.py)
    "ACQ.SYSTEM_ERROR": N_("Alipay system error: the refund may have been made"),
    "20000": N_("Service unavailable: the refund may have been made"),
    "isp.unknow-error": N_("Service temporarily unavailable (business system)"),
    "aop.unknow-error": N_("Service temporarily unavailable (gateway)"),
    "ACQ.DISCORDANT_REPEAT_REQUEST": N_("The request number was sent before with other parameters"),
    "40005": N_("Too many calls"),
    "isv.app-call-limited": N_("The app called too often"),
    "isv.method-call-limited": N_("The method was called too often"),
    "ACQ.INVALID_PARAMETER": N_("Invalid parameter"),
    "ACQ.ACCESS_FORBIDDEN": N_("The app may not use this API"),
    "ACQ.PARTNER_ERROR": N_("Wrong app ID"),
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": N_("The seller's balance is too low"),
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": N_("More than may still be refunded"),
    "ACQ.REASON_TRADE_BEEN_FREEZEN": N_("The trade is frozen"),
    "ACQ.TRADE_NOT_EXIST": N_("The trade does not exist"),
    "ACQ.TRADE_HAS_FINISHED": N_("The trade is completed: no refund allowed"),
    "ACQ.TRADE_STATUS_ERROR": N_("The trade's status is invalid"),
    "ACQ.REASON_TRADE_REFUND_FEE_ERR": N_("The refund amount is invalid"),
    "ACQ.TRADE_NOT_ALLOW_REFUND": N_("The trade allows no refund"),
    "ACQ.REFUND_FEE_ERROR": N_("Wrong trade refund amount"),
    "ACQ.CURRENCY_NOT_SUPPORT": N_("The currency is not supported"),
    # this service's own codes
    "EXCEEDS_PAID_AMOUNT": N_("More than the trade's paid amount: never sent"),
    "INVALID_DETAIL": N_("The refund's detail breaks the protocol: never sent"),
    "SUBMIT_ERROR": N_("The submit failed inside this service"),
    "UNKNOWN_ERROR": N_("Alipay refused without a code"),
    "ACCOUNT_NOT_CONFIGURED": N_("The batch's Alipay account is not configured"),
    "QUERY_MISMATCH": N_("The query contradicts the record"),
    "BATCH_NO_NOT_EXIST": N_("No such batch (query)"),
}

STATES: Final[Mapping[str, str]] = {
    # refunds
    "received": N_("received"),
    "batched": N_("batched"),
    "submitted": N_("submitted"),
    "unknown": N_("unknown"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "rejected": N_("rejected"),
    # reports
    "none": N_("not yet"),
    "pending": N_("pending"),
    "delivered": N_("delivered"),
    "dead": N_("dead letter"),
    # batches (pending, submitted, unknown, rejected shared above)
    "sending": N_("sending"),
    "abandoned": N_("abandoned"),
    "completed": N_("completed"),
    "review": N_("in review"),
    "awaiting_approval": N_("awaiting approval"),
    # a report attempt's status
    "retry": N_("will retry"),
}

EVENTS: Final[Mapping[str, str]] = {
    "accepted": N_("Webhook accepted"),
    "rejected": N_("Rejected before Alipay"),
    "batched": N_("Put in a batch"),
    "submit": N_("Batch submitted"),
    "query": N_("Batch queried"),
    "state": N_("State changed"),
    "result": N_("Alipay's result"),
    "review": N_("Flagged for review"),
    "review_cleared": N_("Review cleared"),
    "report": N_("Reported to the platform"),
    "operator_retry": N_("Retried by the operator"),
    "operator_requery": N_("Re-query asked by the operator"),
    "refund": N_("Refund notify"),
    "dback": N_("Dback notify"),
    "refund_refused": N_("Refund notify refused"),
    "dback_refused": N_("Dback notify refused"),
    "details_removed": N_("Details taken out"),
    "split": N_("Split in two"),
    "created": N_("Created"),
    "approval_link": N_("Approval link made"),
    "approval_held": N_("No link: an earlier one is checked first"),
    "redated": N_("Batch number moved to today"),
    "released": N_("Sent without approval"),
}


def labeller(table: Mapping[str, str], gettext: Callable[[str], str], *, unknown: str | None = None
             ) -> Callable[[str | None], str]:
    """A template function: the translated name of a known key; for another, `unknown`, or the key itself (a
    plain string: the template escapes it)."""

    def label(key: str | None) -> str:
        if key is None:
            return ""
        if key in table:
            return gettext(table[key])
        return key if unknown is None else unknown

    return label


def template_globals(gettext: Callable[[str], str]) -> dict[str, Callable[[str | None], str]]:
    """`state_label(state)`, `event_label(kind)`, `meaning(code)` for the templates of one language."""
    return {"state_label": labeller(STATES, gettext), "event_label": labeller(EVENTS, gettext),
            "meaning": labeller(CODE_MEANINGS, gettext, unknown="")}
