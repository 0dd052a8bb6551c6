-- Top-up invoices and every Heleket status event about them.
-- The row is written and committed before Heleket is asked to create the invoice, so a webhook that
-- races the create response (or a crash between the two) always finds its invoice by order_id.
CREATE TABLE invoices (
    id               BIGSERIAL PRIMARY KEY,
    order_id         TEXT NOT NULL UNIQUE CHECK (order_id ~ '^[A-Za-z0-9_-]{1,128}$'),
    user_id          BIGINT NOT NULL REFERENCES users (id),
    amount           NUMERIC(24, 8) NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    uuid             TEXT UNIQUE,
    url              TEXT,
    -- 'creating' until Heleket answered; then Heleket's own status names.
    status           TEXT NOT NULL DEFAULT 'creating',
    is_final         BOOLEAN NOT NULL DEFAULT false,
    payer_currency   TEXT,
    payer_amount     NUMERIC(24, 8),
    payment_amount   NUMERIC(24, 8),
    credited_amount  NUMERIC(24, 8),
    needs_attention  TEXT,
    raw              JSONB,
    expires_at       TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX invoices_unfinished_idx ON invoices (created_at) WHERE NOT is_final;
CREATE INDEX invoices_user_idx ON invoices (user_id, created_at DESC);

-- Each (uuid, status) is recorded once: a duplicate webhook finds its event taken and does nothing.
CREATE TABLE invoice_events (
    id          BIGSERIAL PRIMARY KEY,
    invoice_id  BIGINT NOT NULL REFERENCES invoices (id),
    uuid        TEXT NOT NULL,
    status      TEXT NOT NULL,
    is_final    BOOLEAN NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('webhook', 'reconciler')),
    payload     JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT invoice_events_once UNIQUE (uuid, status)
);
CREATE INDEX invoice_events_invoice_idx ON invoice_events (invoice_id);
