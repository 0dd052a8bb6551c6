-- The ledger: double-entry, append-only. Money only moves as a movement (one idempotency key, one
-- type, one reference) made of postings that sum to zero in one currency. Nothing updates or
-- deletes a movement or a posting; a correction is a new movement.

-- Accounts. Users hold two: 'user' (spendable balance) and 'user_held' (reserved for orders that
-- are not yet delivered). The shop's system accounts have no user. Only user-side accounts cache a
-- balance: they are the ones decisions are made on, and the cache carries the CHECK that keeps a
-- user's money from ever going negative. System balances are summed from postings when needed, so
-- no single row becomes a lock every payment queues on.
CREATE TABLE accounts (
    id         BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'user_held', 'heleket_clearing', 'fragment_costs',
                                             'shop_revenue', 'adjustments', 'bonuses')),
    user_id    BIGINT REFERENCES users (id),
    currency   TEXT NOT NULL CHECK (currency ~ '^[A-Z0-9]{2,10}$'),
    balance    NUMERIC(24, 8),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT accounts_owner CHECK ((kind IN ('user', 'user_held')) = (user_id IS NOT NULL)),
    CONSTRAINT accounts_cached_balance CHECK ((kind IN ('user', 'user_held')) = (balance IS NOT NULL)),
    CONSTRAINT accounts_balance_not_negative CHECK (balance >= 0),
    CONSTRAINT accounts_one_per_kind UNIQUE NULLS NOT DISTINCT (kind, user_id, currency)
);

CREATE TABLE movements (
    id              BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    type            TEXT NOT NULL CHECK (type IN ('recharge', 'purchase', 'refund', 'bonus', 'adjustment')),
    reference       TEXT NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    memo            TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX movements_reference_idx ON movements (reference);

CREATE TABLE ledger (
    id          BIGSERIAL PRIMARY KEY,
    movement_id BIGINT NOT NULL REFERENCES movements (id),
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    amount      NUMERIC(24, 8) NOT NULL CHECK (amount <> 0),
    CONSTRAINT ledger_one_leg_per_account UNIQUE (movement_id, account_id)
);
CREATE INDEX ledger_account_idx ON ledger (account_id, movement_id);

-- Append-only, in the database itself.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER movements_append_only BEFORE UPDATE OR DELETE ON movements
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER movements_no_truncate BEFORE TRUNCATE ON movements
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Every movement balances, in one currency, checked when its transaction commits.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total NUMERIC;
    currencies INTEGER;
BEGIN
    SELECT sum(l.amount), count(DISTINCT a.currency) INTO total, currencies
    FROM ledger l JOIN accounts a ON a.id = l.account_id
    WHERE l.movement_id = NEW.movement_id;
    IF total <> 0 OR currencies <> 1 THEN
        RAISE EXCEPTION 'movement % does not balance (sum %, % currencies)', NEW.movement_id, total, currencies
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ledger_balanced AFTER INSERT ON ledger
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();
