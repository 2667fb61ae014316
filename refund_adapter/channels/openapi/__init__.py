"""Alipay OpenAPI refunds: `alipay.trade.refund`, one trade per call, `out_request_no` as the idempotency key,
RSA2-signed requests and responses, `alipay.trade.fastpay.refund.query` to settle what a call left unknown.

The modules here other than the channel are pure (no I/O), so the client and the sandbox share them.
"""
