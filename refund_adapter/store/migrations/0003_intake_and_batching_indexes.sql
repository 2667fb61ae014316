-- Indexes on `refunds` shaped for the two hot paths.
-- Intake: a new refund has no batch, so only batched refunds need an entry in refunds_by_batch (`batch_id = $1`
-- implies `batch_id IS NOT NULL`: the partial index still serves every lookup by batch), one index entry fewer
-- written per webhook.
-- Batching picks each trade's first waiting refund: with trade_no in refunds_received the planner reads only the
-- waiting refunds, in the order it needs, instead of every refund the account ever had through refunds_by_trade.
DROP INDEX refunds_by_batch;
CREATE INDEX refunds_by_batch ON refunds (batch_id) WHERE batch_id IS NOT NULL;
DROP INDEX refunds_received;
CREATE INDEX refunds_received ON refunds (alipay_account, trade_no, id) WHERE state = 'received';
