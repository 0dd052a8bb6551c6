-- Broadcasts: a message an admin sends to every user or a segment, paced, resumable after a restart.
-- Recipients are snapshotted when sending starts, so a restart resumes the same list; each recipient
-- is claimed ('sending') before its message goes out and settled after Telegram answered, so a
-- claim found after a crash marks a message that may have been delivered: it becomes 'unknown' and is
-- never sent again.

-- Set when sending to the user failed because they blocked the bot (or deleted their account); later
-- broadcasts skip them until they are seen again (last_seen_at after blocked_at).
ALTER TABLE users ADD COLUMN blocked_at TIMESTAMPTZ;

CREATE TABLE broadcasts (
    id                  BIGSERIAL PRIMARY KEY,
    admin_id            BIGINT NOT NULL,
    admin_language      TEXT NOT NULL DEFAULT 'en',  -- the language of the progress and the report
    text                TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 20000),  -- HTML as composed
    button_text         TEXT,
    button_url          TEXT,
    segment_language    TEXT,  -- NULL: every language
    segment_active_days INT CHECK (segment_active_days > 0),  -- NULL: active or not
    state               TEXT NOT NULL DEFAULT 'draft'
                        CHECK (state IN ('draft', 'sending', 'paused', 'done', 'cancelled')),
    total               INT NOT NULL DEFAULT 0,
    sent                INT NOT NULL DEFAULT 0,
    blocked             INT NOT NULL DEFAULT 0,
    failed              INT NOT NULL DEFAULT 0,
    unknown             INT NOT NULL DEFAULT 0,
    progress_chat_id    BIGINT,
    progress_message_id BIGINT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,
    CHECK ((button_text IS NULL) = (button_url IS NULL))
);
CREATE INDEX broadcasts_active_idx ON broadcasts (id) WHERE state = 'sending';

CREATE TABLE broadcast_recipients (
    broadcast_id BIGINT NOT NULL REFERENCES broadcasts (id),
    user_id      BIGINT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'sending', 'sent', 'blocked', 'failed', 'unknown')),
    claimed_at   TIMESTAMPTZ,
    sent_at      TIMESTAMPTZ,
    error        TEXT,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX broadcast_recipients_pending_idx ON broadcast_recipients (broadcast_id, user_id)
    WHERE state = 'pending';
