-- name: current_cookies^
-- The cookies in use: the newest row.
SELECT id, header, source, obtained_at, expires_at, checked_at, alerted_at
FROM fragment_cookies ORDER BY id DESC LIMIT 1;

-- name: save_cookies$
INSERT INTO fragment_cookies (header, source, expires_at, checked_at)
VALUES ($1, $2, $3, CASE WHEN $2 = 'refresh' THEN now() END)
RETURNING id;

-- name: prune_cookies!
-- Keeps the newest $1 rows, and the newest row of each source: `latest_config_header` must still
-- find the config file's cookies after many refreshes, or a restart would adopt them again.
DELETE FROM fragment_cookies
WHERE id < (SELECT min(id) FROM (SELECT id FROM fragment_cookies ORDER BY id DESC LIMIT $1) AS kept)
  AND id NOT IN (SELECT max(id) FROM fragment_cookies GROUP BY source);

-- name: latest_config_header$
SELECT header FROM fragment_cookies WHERE source = 'config' ORDER BY id DESC LIMIT 1;

-- name: mark_cookies_checked!
UPDATE fragment_cookies SET checked_at = now() WHERE id = $1;

-- name: claim_cookies_alert$
-- Returns the id only for the first caller, so a lost session is reported once, across restarts too.
UPDATE fragment_cookies SET alerted_at = now() WHERE id = $1 AND alerted_at IS NULL
RETURNING id;
