-- What a user changes about themselves in the bot.

-- name: set_language$
-- The user's own choice: from now on Telegram's language_code no longer overrides it (upsert_user).
UPDATE users SET language = $2, language_set = true WHERE id = $1
RETURNING language;
