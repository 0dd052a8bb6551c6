-- What the ledger reads: balances, and the checks behind `shopbot ledger verify` and the metrics.

-- name: user_balance^
-- A user's available and held balances in one statement ($1 the available account, $2 the held one).
SELECT (SELECT balance FROM accounts WHERE id = $1) AS available,
       (SELECT balance FROM accounts WHERE id = $2) AS held;

-- name: unbalanced_movements
-- For `shopbot ledger verify`: movements whose postings do not sum to zero in one currency.
SELECT m.id, m.idempotency_key, sum(l.amount) AS total, count(DISTINCT a.currency) AS currencies
FROM movements m
LEFT JOIN ledger l ON l.movement_id = m.id
LEFT JOIN accounts a ON a.id = l.account_id
GROUP BY m.id
HAVING coalesce(sum(l.amount), 0) <> 0 OR count(DISTINCT a.currency) <> 1 OR count(l.id) < 2;

-- name: drifted_balances
-- For `shopbot ledger verify`: cached balances that differ from the sum of their postings.
SELECT a.id, a.kind, a.user_id, a.currency, a.balance AS cached, coalesce(s.total, 0) AS summed
FROM accounts a
LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger GROUP BY account_id) s ON s.account_id = a.id
WHERE a.balance IS NOT NULL AND a.balance <> coalesce(s.total, 0);

-- name: ledger_totals^
SELECT (SELECT count(*) FROM movements) AS movements, (SELECT count(*) FROM ledger) AS postings,
       (SELECT count(*) FROM accounts) AS accounts;

-- What the shop owes its users, spendable and reserved for orders (the cached balances, no ledger scan).
-- name: owed_to_users
SELECT kind, COALESCE(sum(balance), 0) AS total
FROM accounts WHERE kind IN ('user', 'user_held') GROUP BY kind;
