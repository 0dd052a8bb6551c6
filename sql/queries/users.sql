-- name: upsert_user^
-- Called on every update from a user: keeps the profile fresh. The language is Telegram's until
-- the user picks one themselves (language_set).
INSERT INTO users AS u (id, username, first_name, last_name, language, is_premium)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
    username     = EXCLUDED.username,
    first_name   = EXCLUDED.first_name,
    last_name    = EXCLUDED.last_name,
    is_premium   = EXCLUDED.is_premium,
    language     = CASE WHEN u.language_set THEN u.language ELSE EXCLUDED.language END,
    last_seen_at = now()
RETURNING id, username, first_name, language, is_premium, first_seen_at, (xmax = 0) AS is_new;

-- name: get_user^
SELECT id, username, first_name, last_name, language, is_premium, first_seen_at, last_seen_at
FROM users WHERE id = $1;
