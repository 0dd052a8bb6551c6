-- Orders for Stars and Premium. The state machine lives in shopbot/fulfilment/orders.py:
--   created -> queued -> paying -> completed
--                    \-> verifying -> completed | refunded | queued (a payment proven never sent)
--   created/queued -> refunded (a definite failure before any payment could leave the wallet)
-- `prepared` is the signed payment, stored before it is submitted, so after a crash the same
-- payment is re-submitted or verified and a new one is never signed while the old one could land.
CREATE TABLE orders (
    id                BIGSERIAL PRIMARY KEY,
    user_id           BIGINT NOT NULL REFERENCES users (id),
    product           TEXT NOT NULL CHECK (product IN ('stars', 'premium')),
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    recipient         TEXT NOT NULL,
    recipient_name    TEXT NOT NULL DEFAULT '',
    price             NUMERIC(24, 8) NOT NULL CHECK (price > 0),
    currency          TEXT NOT NULL,
    state             TEXT NOT NULL DEFAULT 'created'
                      CHECK (state IN ('created', 'queued', 'paying', 'verifying', 'completed', 'refunded')),
    idempotency_key   TEXT NOT NULL UNIQUE,
    fragment_order_id TEXT,
    prepared          JSONB,
    prepared_until    TIMESTAMPTZ,
    cost_ton          NUMERIC(24, 9),
    txid              TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error        TEXT,
    refund_reason     TEXT,
    delay_notified    BOOLEAN NOT NULL DEFAULT false,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at       TIMESTAMPTZ,
    CONSTRAINT orders_prepared_before_paying CHECK (state NOT IN ('paying') OR prepared IS NOT NULL)
);
CREATE INDEX orders_due_idx ON orders (next_attempt_at, id) WHERE state IN ('queued', 'paying', 'verifying');
CREATE INDEX orders_user_idx ON orders (user_id, created_at DESC);
