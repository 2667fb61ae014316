"""Alipay's MAPI batch refund (`refund_fastpay_by_platform_nopwd`): its wire formats, gateway client and channel."""
