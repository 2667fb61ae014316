-- A refund an operator must look at: a result from Alipay (a notify or the query) contradicted what is recorded
-- for it, so it was not applied (store/base.py record_results). `review` holds the first reason; NULL means
-- nothing to look at. The partial index keeps `GET /-/refunds?review=true` and the gauge of refunds in review a
-- read of the few flagged rows, however many refunds are stored, and costs nothing on the rows never flagged.
ALTER TABLE refunds ADD COLUMN review TEXT;
CREATE INDEX refunds_in_review ON refunds (review) WHERE review IS NOT NULL;
