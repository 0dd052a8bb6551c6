-- The confirmation a user pressed to place an order. One confirmation places one order, whatever the
-- bot's own state says: a double press, a replay, or two instances racing all meet this index.
ALTER TABLE orders ADD COLUMN confirmation TEXT;
CREATE UNIQUE INDEX orders_one_per_confirmation ON orders (user_id, confirmation) WHERE confirmation IS NOT NULL;
