-- Dead letters in id order, for the operator's retry of all of them, a chunk at a time (store/sql.py,
-- DEAD_LETTERS_AFTER): without it each chunk would scan the table for the few refunds whose report is dead.
-- Intake never writes it (a new refund's report is never dead), nor does a delivered report.
CREATE INDEX refunds_dead_letters ON refunds (id) WHERE report_state = 'dead';
