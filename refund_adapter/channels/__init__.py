"""The ways of reaching Alipay: one package per channel behind one `RefundChannel` protocol, and their signing."""
