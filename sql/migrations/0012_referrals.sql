-- Referrals (issue 18). Each user may get an opaque code for their link (never their id); a new user who
-- starts the bot through a link is bound to its owner once and for ever (set only while NULL, in SQL).
ALTER TABLE users ADD COLUMN referral_code TEXT UNIQUE CHECK (referral_code ~ '^[A-Za-z0-9]{8}$');
ALTER TABLE users ADD COLUMN invited_by BIGINT REFERENCES users (id) CHECK (invited_by <> id);
ALTER TABLE users ADD COLUMN invited_at TIMESTAMPTZ;
ALTER TABLE users ADD CONSTRAINT users_invited_when CHECK ((invited_by IS NULL) = (invited_at IS NULL));
CREATE INDEX users_invited_by_idx ON users (invited_by, invited_at DESC) WHERE invited_by IS NOT NULL;

-- One row per bonus paid: the ledger holds the money (movement 'referral:invoice:<id>'), this row says
-- whose top-up earned it and carries the operator's flag when Heleket later reports the top-up refunded
-- (the ledger is append-only; a flagged bonus is for the operator to judge, never taken back blindly).
CREATE TABLE referral_bonuses (
    invoice_id  BIGINT PRIMARY KEY REFERENCES invoices (id),
    inviter_id  BIGINT NOT NULL REFERENCES users (id),
    invitee_id  BIGINT NOT NULL REFERENCES users (id),
    movement_id BIGINT NOT NULL UNIQUE REFERENCES movements (id),
    amount      NUMERIC(24, 8) NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    flagged     TEXT,
    flagged_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT referral_bonuses_flagged_when CHECK ((flagged IS NULL) = (flagged_at IS NULL))
);
CREATE INDEX referral_bonuses_inviter_idx ON referral_bonuses (inviter_id, created_at DESC);
CREATE INDEX referral_bonuses_created_idx ON referral_bonuses (created_at);
