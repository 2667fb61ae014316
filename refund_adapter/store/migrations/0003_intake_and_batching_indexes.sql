-- Indexes on `refunds` shaped for the hot paths.
-- Intake: a new refund has no batch, so only batched refunds need an entry in refunds_by_batch (`batch_id = $1`
-- implies `batch_id IS NOT NULL`: the partial index still serves every lookup by batch), one index entry fewer
-- written per webhook.
DROP INDEX refunds_by_batch;
CREATE INDEX refunds_by_batch ON refunds (batch_id) WHERE batch_id IS NOT NULL;
-- Batching asks, for each waiting refund, whether an earlier one of its trade is waiting too: with the id in
-- refunds_by_trade that is one probe, so a batch no longer reads every refund the account ever had.
DROP INDEX refunds_by_trade;
CREATE INDEX refunds_by_trade ON refunds (alipay_account, trade_no, id);
-- Counting refunds by state and by report state (/-/stats, /metrics) reads only this index, in one pass,
-- instead of the whole table for the report states. Nothing reads refunds_by_state in id order.
DROP INDEX refunds_by_state;
CREATE INDEX refunds_by_state ON refunds (state, report_state);
