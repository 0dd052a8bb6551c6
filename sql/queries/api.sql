-- What the REST API reads (shopbot/web/api.py). Read-only: the API never moves money.

-- name: user_exists$
SELECT EXISTS (SELECT 1 FROM users WHERE id = $1);

-- name: transactions_page
-- Movements that touched a user's side of the books, newest first, keyset-paginated by movement id.
-- $1 user id (NULL: every user), $2 movement type (NULL: any), $3 only ids below this (NULL: from
-- the newest), $4 rows, $5 status (NULL: any). Amounts are signed as the user's money changed:
-- `available` on the spendable account, `held` on the held one, `amount` their sum (a hold or a
-- release moves money between the two and sums to zero). Every Ledger movement has one user, so
-- min() is that user. Status: `pending` for a hold whose money is still reserved (its order is in
-- progress: the reference's held postings do not yet sum to zero), `completed` for everything else.
SELECT t.*, s.status
FROM (
    SELECT m.id, m.type, m.reference, m.created_at, min(a.user_id) AS user_id, a.currency,
           sum(l.amount) AS amount,
           coalesce(sum(l.amount) FILTER (WHERE a.kind = 'user'), 0::numeric(24, 8)) AS available,
           coalesce(sum(l.amount) FILTER (WHERE a.kind = 'user_held'), 0::numeric(24, 8)) AS held
    FROM movements m
    JOIN ledger l ON l.movement_id = m.id
    JOIN accounts a ON a.id = l.account_id
    WHERE a.kind IN ('user', 'user_held')
      AND ($1::bigint IS NULL OR a.user_id = $1::bigint)
      AND ($2::text IS NULL OR m.type = $2::text)
      AND ($3::bigint IS NULL OR m.id < $3::bigint)
    GROUP BY m.id, a.currency
) t
CROSS JOIN LATERAL (
    SELECT CASE WHEN t.held > 0 AND (
        SELECT coalesce(sum(l2.amount), 0)
        FROM movements m2
        JOIN ledger l2 ON l2.movement_id = m2.id
        JOIN accounts a2 ON a2.id = l2.account_id
        WHERE m2.reference = t.reference AND a2.kind = 'user_held' AND a2.user_id = t.user_id
    ) > 0 THEN 'pending' ELSE 'completed' END AS status
) s
WHERE ($5::text IS NULL OR s.status = $5::text)
ORDER BY t.id DESC
LIMIT $4::int;
