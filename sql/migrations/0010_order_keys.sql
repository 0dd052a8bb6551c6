-- Money at the edges (issue 13), for orders paid through the Fragment service.
--
-- Idempotency keys: new orders send 'shop-<id>-<random>' (orders.sql insert_order), so a key is never
-- used twice on a wallet, even after a reinstall or a restore starts the ids again. Keys already stored
-- stay as they are: those orders are known to the service under them.
--
-- `refusal`: the reason key of a definite refusal at submit (no funds, order expired) while a signed
-- payment for the order could still land. The order is refunded with it once no signature can land.
ALTER TABLE orders ADD COLUMN refusal TEXT;

-- `prepared_until` now means "no payment we signed for this order can land after this": the newest
-- valid_until of every signature made for it, plus the landing margin, and never moved backwards. It was
-- the bare valid_until before; the default margin is added to the orders still in flight.
UPDATE orders SET prepared_until = prepared_until + interval '60 seconds'
WHERE prepared_until IS NOT NULL AND state IN ('queued', 'paying', 'verifying');
