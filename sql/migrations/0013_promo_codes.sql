-- Promo codes (issue 18). A code is a fixed credit to the balance (a ledger bonus) or a percent off one
-- purchase up to a cap. `uses` only ever moves inside the redeeming transaction, under the row lock of
-- the code, and never past `max_uses` (the CHECK is the last word even against a buggy caller).
CREATE TABLE promo_codes (
    id          BIGSERIAL PRIMARY KEY,
    code        TEXT NOT NULL CHECK (code ~ '^[A-Z0-9]{3,32}$'),  -- upper case: users type it in any case
    kind        TEXT NOT NULL CHECK (kind IN ('credit', 'discount')),
    amount      NUMERIC(24, 8) CHECK (amount > 0),                -- credit: added to the balance
    percent     NUMERIC(5, 2) CHECK (percent > 0 AND percent < 100),  -- discount: off the price ...
    cap         NUMERIC(24, 8) CHECK (cap > 0),                   -- ... but never more than this
    max_uses    INTEGER NOT NULL CHECK (max_uses > 0),
    per_user    INTEGER NOT NULL DEFAULT 1 CHECK (per_user > 0),
    uses        INTEGER NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ,
    enabled     BOOLEAN NOT NULL DEFAULT true,
    created_by  BIGINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT promo_codes_uses_bounded CHECK (uses >= 0 AND uses <= max_uses),
    CONSTRAINT promo_codes_kind_fields CHECK (
        (kind = 'credit' AND amount IS NOT NULL AND percent IS NULL AND cap IS NULL)
        OR (kind = 'discount' AND amount IS NULL AND percent IS NOT NULL AND cap IS NOT NULL))
);
CREATE UNIQUE INDEX promo_codes_code_key ON promo_codes (code);

-- One row per use. (code, user, nth) is unique: a user's nth use of a code exists once, whatever raced.
-- A credit is 'credited' at once (its ledger key is promo:<id>); a discount waits ('pending') for the
-- user's next purchase, is 'used' by the order placed with it, and pending again if that order is refunded.
CREATE TABLE promo_redemptions (
    id          BIGSERIAL PRIMARY KEY,
    code_id     BIGINT NOT NULL REFERENCES promo_codes (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    nth         INTEGER NOT NULL CHECK (nth > 0),
    state       TEXT NOT NULL CHECK (state IN ('credited', 'pending', 'used')),
    order_id    BIGINT REFERENCES orders (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at     TIMESTAMPTZ,
    CONSTRAINT promo_redemptions_once UNIQUE (code_id, user_id, nth),
    CONSTRAINT promo_redemptions_order CHECK ((state = 'used') = (order_id IS NOT NULL))
);
CREATE INDEX promo_redemptions_pending_idx ON promo_redemptions (user_id) WHERE state = 'pending';
CREATE UNIQUE INDEX promo_redemptions_one_per_order ON promo_redemptions (order_id) WHERE order_id IS NOT NULL;

-- An order bought with a discount: `price` stays what the user pays (the hold, and what the cost guard
-- judges); the list price and the discount are kept beside it for display.
ALTER TABLE orders ADD COLUMN list_price NUMERIC(24, 8);
ALTER TABLE orders ADD COLUMN discount NUMERIC(24, 8) NOT NULL DEFAULT 0 CHECK (discount >= 0);
