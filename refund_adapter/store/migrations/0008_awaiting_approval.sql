-- Batches that wait for an operator's approval at Alipay (`mapi_pwd` accounts, state 'awaiting_approval').
-- `approval_link_at`: when the last signed link was made for the batch's current batch_no. A batch_no no link left
-- for cannot be known to Alipay, so it may move to a later day; one a link left for is queried first.
ALTER TABLE batches ADD COLUMN approval_link_at DOUBLE PRECISION;
-- What waits for the operator (the dashboard's list, its count, total and oldest, the gauges): the few rows in
-- that state, never the table.
CREATE INDEX batches_awaiting_approval ON batches (id) WHERE state = 'awaiting_approval';
-- The reconciler also queries a batch whose approval link was opened but whose notify never came.
DROP INDEX batches_by_query;
CREATE INDEX batches_by_query ON batches (next_query_at) WHERE state IN ('submitted', 'unknown', 'awaiting_approval');
