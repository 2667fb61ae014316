-- Small durable key-value data owned by platform plugins (payment -> trade mappings, poll cursors).
CREATE TABLE plugin_data (
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (plugin, key)
);
