-- The operator's view: each refund's and each batch's journal, written in the transaction of the change it
-- describes (store/journal.py), the times an operator asks about, and the indexes that find refunds.
-- A refund's journal: every state change with its cause, report attempts, review flags, operator actions. The
-- webhook that created a refund writes no row here: its `created_at` is that event (intake stays one INSERT).
CREATE TABLE refund_events (
    id        {serial_pk},
    refund_id {id_type} NOT NULL,
    at        DOUBLE PRECISION NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX refund_events_by_refund ON refund_events (refund_id, id);
-- A batch's journal: each submit attempt with the request sent (its signature never stored) and the answer,
-- each notify (recorded or refused, and why), each query answer, operator re-queries, splits.
CREATE TABLE batch_events (
    id       {serial_pk},
    batch_id {id_type} NOT NULL,
    at       DOUBLE PRECISION NOT NULL,
    kind     TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX batch_events_by_batch ON batch_events (batch_id, id);
-- When the platform had the result (the summary's webhook-to-reported time), and a batch's first send, first
-- acknowledgement and first notify.
ALTER TABLE refunds ADD COLUMN reported_at DOUBLE PRECISION;
ALTER TABLE batches ADD COLUMN sent_at DOUBLE PRECISION;
ALTER TABLE batches ADD COLUMN acknowledged_at DOUBLE PRECISION;
ALTER TABLE batches ADD COLUMN notified_at DOUBLE PRECISION;
-- Finding a refund by trade_no alone: refunds_by_trade now leads with trade_no. Its other readers (batching's
-- probe for an earlier waiting refund of the trade, the paid amount's sum) name both columns by equality, so the
-- order serves them the same, and intake writes no more index entries than before.
DROP INDEX refunds_by_trade;
CREATE INDEX refunds_by_trade ON refunds (trade_no, alipay_account, id);
-- Finding a refund by order id or by the platform's refund id alone (the unique key leads with platform, shop):
-- one index entry each per new refund (bench/ab.py; the figures in bench/README.md).
CREATE INDEX refunds_by_order ON refunds (order_id);
CREATE INDEX refunds_by_platform_refund ON refunds (platform_refund_id);
-- Bounding by id a page of refunds filtered by date (store/sql.py, _id_bounds): one entry per new refund, at the
-- index's right edge (created_at only grows).
CREATE INDEX refunds_by_created ON refunds (created_at);
-- The summary of a day or a month without reading a million refunds: refunds that became final, counted per hour
-- they were created in, account and state (a final state never changes), and delivered reports counted per hour
-- delivered and webhook-to-reported time (seconds, to within 10%). Written in the transactions that
-- make a refund final or record a report, never by intake (but for a refund rejected there); refunds still on
-- their way are few and counted live.
CREATE TABLE refund_tally (
    hour    BIGINT NOT NULL,
    account TEXT NOT NULL,
    state   TEXT NOT NULL,
    n       BIGINT NOT NULL,
    fen     BIGINT NOT NULL,
    PRIMARY KEY (hour, account, state)
);
CREATE TABLE report_tally (
    hour    BIGINT NOT NULL,
    seconds BIGINT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (hour, seconds)
);
-- The refunds already final, counted once. Whole seconds divided as integers: the same hour on both backends
-- (PostgreSQL rounds a float cast to an integer, SQLite truncates it), but for a refund created in the last half
-- second of an hour, which PostgreSQL counts in the next.
INSERT INTO refund_tally (hour, account, state, n, fen)
    SELECT CAST(created_at AS BIGINT) / 3600 * 3600, alipay_account, state, COUNT(*), SUM(amount_fen) FROM refunds
    WHERE state IN ('succeeded', 'failed', 'rejected')
    GROUP BY CAST(created_at AS BIGINT) / 3600 * 3600, alipay_account, state;
-- A batch's refunds counted by state (the batches list) from the index alone. A new refund has no batch, so
-- intake still writes no entry here (0003); a state change of a batched refund moves its entry.
DROP INDEX refunds_by_batch;
CREATE INDEX refunds_by_batch ON refunds (batch_id, state) WHERE batch_id IS NOT NULL;
