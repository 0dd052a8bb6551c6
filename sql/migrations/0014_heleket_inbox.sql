-- Heleket webhooks through a durable inbox (issue 15).
--
-- The webhook endpoint verifies the signature and stores the event here, and answers; the settler
-- (shopbot/payments/settler.py) confirms each one with Heleket's payment/info and applies it, after the answer.
-- An event is one (uuid, status, is_final) as the webhook said it: a repeated webhook (the same body, or the same
-- event in another body) finds its row and is stored once. An event Heleket denied ('refused': it does not say
-- what the webhook said, or the webhook is not about our invoice as we stored it) no longer counts for that: the
-- same event heard again (the genuine webhook after Heleket's own test webhook) is a new row, asked about anew.
--
-- state: 'pending' until acted on; 'settled' once Heleket's answer was applied (credited, recorded, or a state
-- acted on before); 'refused' when Heleket denied it or gave no answer for too long (outcome says which).
-- A pending event is claimed FOR UPDATE SKIP LOCKED by one settler at a time; one Heleket could not be asked
-- about waits until next_at (backoff) and is tried again.
CREATE TABLE heleket_inbox (
    id          BIGSERIAL PRIMARY KEY,
    uuid        TEXT NOT NULL,
    status      TEXT NOT NULL,
    is_final    BOOLEAN NOT NULL,
    order_id    TEXT NOT NULL,
    payload     JSONB NOT NULL,               -- the verified webhook, without its signature
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'settled', 'refused')),
    outcome     TEXT,                         -- payments.settle.Outcome of the last attempt
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at  TIMESTAMPTZ,
    CONSTRAINT heleket_inbox_ended CHECK ((state = 'pending') = (settled_at IS NULL))
);
CREATE UNIQUE INDEX heleket_inbox_once ON heleket_inbox (uuid, status, is_final) WHERE state <> 'refused';
CREATE INDEX heleket_inbox_due_idx ON heleket_inbox (next_at, id) WHERE state = 'pending';
