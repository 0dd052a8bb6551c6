-- The only statements that move money. Loaded by shopbot/ledger/postings.py alone: import-linter
-- forbids every other module to import it (pyproject.toml).

-- name: ensure_account$
-- The account of this kind (for this user) in this currency, created on first use.
WITH created AS (
    INSERT INTO accounts (kind, user_id, currency, balance)
    VALUES ($1, $2, $3, CASE WHEN $1 IN ('user', 'user_held') THEN 0 END)
    ON CONFLICT ON CONSTRAINT accounts_one_per_kind DO NOTHING
    RETURNING id
)
SELECT id FROM created
UNION ALL
SELECT id FROM accounts WHERE kind = $1 AND user_id IS NOT DISTINCT FROM $2 AND currency = $3
LIMIT 1;

-- name: post_movement^
-- One movement in one statement: the movement row (skipped when its key exists), the cached
-- balances of user-side accounts (whose CHECK refuses a negative balance, failing the whole
-- statement), and the postings. No row back means the key was used before.
-- $1 key, $2 type, $3 reference, $4 memo, $5 account ids, $6 amounts (same order).
WITH movement AS (
    INSERT INTO movements (idempotency_key, type, reference, memo)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, created_at
), legs AS (
    SELECT account_id, amount FROM unnest($5::bigint[], $6::numeric[]) AS leg (account_id, amount)
), balances AS (
    UPDATE accounts a SET balance = a.balance + legs.amount
    FROM legs, movement
    WHERE a.id = legs.account_id AND a.balance IS NOT NULL
    RETURNING a.id, a.balance
), postings AS (
    INSERT INTO ledger (movement_id, account_id, amount)
    SELECT movement.id, legs.account_id, legs.amount FROM movement, legs
)
SELECT movement.id, movement.created_at,
       coalesce((SELECT array_agg(id ORDER BY id) FROM balances), '{}') AS balance_accounts,
       coalesce((SELECT array_agg(balance ORDER BY id) FROM balances), '{}') AS balances
FROM movement;

-- name: movement_by_key^
SELECT m.id, m.type, m.reference, m.created_at,
       array_agg(l.account_id ORDER BY l.account_id) AS accounts,
       array_agg(l.amount ORDER BY l.account_id) AS amounts
FROM movements m JOIN ledger l ON l.movement_id = m.id
WHERE m.idempotency_key = $1
GROUP BY m.id;
