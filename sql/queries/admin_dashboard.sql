-- The admin dashboard's figures (shopbot/bot/admin/dashboard.py). $1 is the start of the period.

-- name: period_figures^
-- Top-ups and sales are read from the ledger, where money actually moved: a top-up is a recharge
-- movement's credit to a user; a sale is an order's capture, whose legs are the Fragment cost and the
-- shop's revenue (price minus cost). Stars and Premium count orders completed in the period.
WITH topups AS (
    SELECT count(DISTINCT m.id) AS n, coalesce(sum(l.amount), 0) AS total
    FROM movements m
    JOIN ledger l ON l.movement_id = m.id
    JOIN accounts a ON a.id = l.account_id AND a.kind = 'user'
    WHERE m.type = 'recharge' AND m.created_at >= $1 AND l.amount > 0
), captured AS (
    SELECT coalesce(sum(l.amount) FILTER (WHERE a.kind = 'shop_revenue'), 0) AS revenue,
           coalesce(sum(l.amount) FILTER (WHERE a.kind = 'fragment_costs'), 0) AS cost,
           coalesce(-sum(l.amount) FILTER (WHERE a.kind = 'user_held'), 0) AS sales
    FROM movements m
    JOIN ledger l ON l.movement_id = m.id
    JOIN accounts a ON a.id = l.account_id
    WHERE m.type = 'purchase' AND m.idempotency_key LIKE 'order:%:capture' AND m.created_at >= $1
), uncosted AS (
    -- Captures booked with no Fragment cost (no TON rate was known then): their revenue is overstated.
    SELECT count(*) AS n
    FROM movements m
    WHERE m.type = 'purchase' AND m.idempotency_key LIKE 'order:%:capture' AND m.created_at >= $1
      AND NOT EXISTS (SELECT 1 FROM ledger l JOIN accounts a ON a.id = l.account_id
                      WHERE l.movement_id = m.id AND a.kind = 'fragment_costs')
), sold AS (
    SELECT coalesce(sum(quantity) FILTER (WHERE product = 'stars'), 0) AS stars,
           count(*) FILTER (WHERE product = 'premium') AS premium,
           coalesce(sum(quantity) FILTER (WHERE product = 'premium'), 0) AS premium_months
    FROM orders WHERE state = 'completed' AND finished_at >= $1
)
SELECT topups.n AS topups, topups.total AS topped_up, captured.sales, captured.cost, captured.revenue,
       uncosted.n AS uncosted, sold.stars, sold.premium, sold.premium_months,
       (SELECT count(*) FROM users WHERE first_seen_at >= $1) AS new_users,
       (SELECT count(*) FROM users WHERE last_seen_at >= $1) AS active_users
FROM topups, captured, uncosted, sold;

-- name: daily_sales
-- One row per day (UTC) of the last $1 days, today included, also for days without sales: the price of
-- orders delivered that day and the shop's revenue on them, from their captures in the ledger (the
-- Fragment cost is the difference: a capture's price is its cost plus its revenue).
WITH days AS (
    SELECT generate_series((now() AT TIME ZONE 'UTC')::date - ($1::int - 1), (now() AT TIME ZONE 'UTC')::date,
                           interval '1 day')::date AS day
), captures AS (
    SELECT (m.created_at AT TIME ZONE 'UTC')::date AS day,
           -sum(l.amount) FILTER (WHERE a.kind = 'user_held') AS sales,
           sum(l.amount) FILTER (WHERE a.kind = 'shop_revenue') AS revenue
    FROM movements m
    JOIN ledger l ON l.movement_id = m.id
    JOIN accounts a ON a.id = l.account_id
    WHERE m.type = 'purchase' AND m.idempotency_key LIKE 'order:%:capture'
      AND m.created_at >= now() - make_interval(days => $1::int + 1)
    GROUP BY 1
)
SELECT days.day, coalesce(captures.sales, 0) AS sales, coalesce(captures.revenue, 0) AS revenue
FROM days LEFT JOIN captures USING (day)
ORDER BY days.day;

-- name: cookie_status^
-- The Fragment cookies in use, without their values: when obtained, checked, and whether an alert went out.
SELECT source, obtained_at, expires_at, checked_at, alerted_at
FROM fragment_cookies ORDER BY id DESC LIMIT 1;
