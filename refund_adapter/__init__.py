"""refund-adapter: Alipay no-password batch refunds for e-commerce platforms."""
