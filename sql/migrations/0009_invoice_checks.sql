-- Payments in, at the edges (issue 13).
--
-- An event is one status as Heleket confirmed it, and whether it was final: a non-final `paid` seen
-- first must not make the final `paid` that follows it a duplicate, or the credit is never made.
ALTER TABLE invoice_events DROP CONSTRAINT invoice_events_once;
ALTER TABLE invoice_events ADD CONSTRAINT invoice_events_once UNIQUE (uuid, status, is_final);

-- When the reconciler last asked Heleket about the invoice. Each pass takes the invoices asked about
-- longest ago (never asked first), so a flood of open invoices cannot keep a real one from being asked.
ALTER TABLE invoices ADD COLUMN last_checked_at TIMESTAMPTZ;
DROP INDEX invoices_unfinished_idx;
CREATE INDEX invoices_unfinished_idx ON invoices (last_checked_at NULLS FIRST, created_at) WHERE NOT is_final;

-- A user's open invoices are counted before each new one ([shop] max_open_invoices).
CREATE INDEX invoices_open_by_user_idx ON invoices (user_id, expires_at) WHERE NOT is_final;
