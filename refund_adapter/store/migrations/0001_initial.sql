-- Refunds, batches and the notify audit log. Times are UTC epoch seconds; money is integer fen (0.01 CNY).
-- {serial_pk} and {id_type} are filled in per backend (store/sql.py, Dialect).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE batches (
    id              {serial_pk},
    account         TEXT NOT NULL,
    batch_no        TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    code            TEXT,
    submit_attempts INTEGER NOT NULL DEFAULT 0,
    lease_until     DOUBLE PRECISION,
    query_attempts  INTEGER NOT NULL DEFAULT 0,
    next_query_at   DOUBLE PRECISION,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL
);
CREATE INDEX batches_by_state ON batches (state, lease_until);
CREATE INDEX batches_by_query ON batches (next_query_at) WHERE state IN ('submitted', 'unknown');

CREATE TABLE refunds (
    id                 {serial_pk},
    platform           TEXT NOT NULL,
    shop               TEXT NOT NULL,
    platform_refund_id TEXT NOT NULL,
    order_id           TEXT NOT NULL,
    trade_no           TEXT NOT NULL,
    amount_fen         BIGINT NOT NULL CHECK (amount_fen > 0),
    currency           TEXT NOT NULL,
    reason             TEXT NOT NULL,
    alipay_account     TEXT NOT NULL,
    paid_amount_fen    BIGINT,
    context            TEXT NOT NULL,
    state              TEXT NOT NULL,
    code               TEXT,
    batch_id           {id_type} REFERENCES batches (id),
    report_state       TEXT NOT NULL DEFAULT 'none',
    report_attempts    INTEGER NOT NULL DEFAULT 0,
    report_error       TEXT,
    report_next_at     DOUBLE PRECISION,
    created_at         DOUBLE PRECISION NOT NULL,
    updated_at         DOUBLE PRECISION NOT NULL,
    UNIQUE (platform, shop, platform_refund_id)
);
CREATE INDEX refunds_received ON refunds (alipay_account, id) WHERE state = 'received';
CREATE INDEX refunds_by_trade ON refunds (alipay_account, trade_no);
CREATE INDEX refunds_by_batch ON refunds (batch_id);
CREATE INDEX refunds_to_report ON refunds (report_next_at) WHERE report_state = 'pending';
CREATE INDEX refunds_by_state ON refunds (state, id);

CREATE TABLE notifies (
    batch_no    TEXT NOT NULL,
    notify_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (batch_no, notify_id, kind)
);
