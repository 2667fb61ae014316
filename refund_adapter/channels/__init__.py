"""One package per way of reaching Alipay (MAPI batches, OpenAPI `alipay.trade.refund`), behind one protocol."""
