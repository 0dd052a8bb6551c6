-- Telegram users of the shop. The id is Telegram's own user id: BIGINT, since ids above 2^31 exist.
CREATE TABLE users (
    id            BIGINT PRIMARY KEY,
    username      TEXT,
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT,
    language      TEXT NOT NULL DEFAULT 'en',
    language_set  BOOLEAN NOT NULL DEFAULT false,
    is_premium    BOOLEAN NOT NULL DEFAULT false,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX users_username_idx ON users (lower(username));
