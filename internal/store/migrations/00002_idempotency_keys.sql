-- +goose Up
-- Idempotency-Key of a POST, with a fingerprint of its request and the
-- answer it got, so a retry is answered the same and creates nothing. The
-- row is inserted first in the POST's transaction: a concurrent request
-- with the same key waits on the primary key until that transaction ends.
CREATE TABLE idempotency_keys (
    key         text        PRIMARY KEY,
    fingerprint bytea       NOT NULL,
    status      integer     NOT NULL DEFAULT 0,
    location    text        NOT NULL DEFAULT '',
    body        bytea       NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The sweep deletes by age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
