-- Broadcasts (shopbot/bot/admin/broadcasts.py and broadcast_sender.py): drafts, the recipient snapshot, and
-- each recipient's claim → outcome. A user is in a segment when their language and last activity match,
-- and is left out while they have blocked the bot and not been seen since.

-- name: count_segment$
SELECT count(*) FROM users
WHERE ($1::text IS NULL OR language = $1)
  AND ($2::int IS NULL OR last_seen_at > now() - make_interval(days => $2))
  AND (blocked_at IS NULL OR last_seen_at > blocked_at);

-- name: create_draft^
INSERT INTO broadcasts (admin_id, admin_language, text, button_text, button_url, segment_language,
                        segment_active_days)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: get_broadcast^
SELECT * FROM broadcasts WHERE id = $1;

-- name: lock_broadcast^
SELECT * FROM broadcasts WHERE id = $1 FOR UPDATE;

-- name: start_broadcast^
-- draft → sending, once: a second press (or a stale preview) finds no draft and changes nothing.
UPDATE broadcasts SET state = 'sending', started_at = now(), progress_chat_id = $2, progress_message_id = $3
WHERE id = $1 AND state = 'draft'
RETURNING *;

-- name: snapshot_recipients$
-- Who gets it, fixed when sending starts (in the same transaction as start_broadcast).
WITH added AS (
    INSERT INTO broadcast_recipients (broadcast_id, user_id)
    SELECT b.id, u.id FROM broadcasts b
    JOIN users u ON (b.segment_language IS NULL OR u.language = b.segment_language)
                AND (b.segment_active_days IS NULL
                     OR u.last_seen_at > now() - make_interval(days => b.segment_active_days))
                AND (u.blocked_at IS NULL OR u.last_seen_at > u.blocked_at)
    WHERE b.id = $1
    ON CONFLICT DO NOTHING
    RETURNING 1
)
UPDATE broadcasts SET total = (SELECT count(*) FROM added) WHERE id = $1
RETURNING total;

-- name: change_state^
-- An admin's pause, resume or cancel: from one of the states in $2 to $3; no row when the press is stale.
UPDATE broadcasts SET state = $3,
    finished_at = CASE WHEN $3 IN ('done', 'cancelled') THEN now() ELSE finished_at END
WHERE id = $1 AND state = ANY($2::text[])
RETURNING *;

-- name: next_sending$
SELECT id FROM broadcasts WHERE state = 'sending' ORDER BY id LIMIT 1;

-- name: broadcaster_lock$
-- One sender at a time across every shopbot instance (session-level): two would double the pace.
SELECT pg_try_advisory_lock(hashtextextended('shopbot-broadcaster', 0));

-- name: broadcaster_unlock!
SELECT pg_advisory_unlock(hashtextextended('shopbot-broadcaster', 0));

-- name: mark_orphaned_claims$
-- Run under the broadcaster lock before sending: a claim nobody holds was left by a sender that died
-- between claiming and recording; its message may have been delivered, so it is never sent again.
WITH orphans AS (
    UPDATE broadcast_recipients SET state = 'unknown', error = 'the shop stopped while sending'
    WHERE broadcast_id = $1 AND state = 'sending'
    RETURNING 1
)
SELECT count(*) FROM orphans;

-- name: pending_recipients
SELECT user_id FROM broadcast_recipients
WHERE broadcast_id = $1 AND state = 'pending' AND user_id > $2
ORDER BY user_id LIMIT $3;

-- name: claim_recipient$
-- Only while the broadcast is sending: a pause or cancel stops the very next claim.
UPDATE broadcast_recipients r SET state = 'sending', claimed_at = now()
FROM broadcasts b
WHERE r.broadcast_id = $1 AND r.user_id = $2 AND r.state = 'pending'
  AND b.id = r.broadcast_id AND b.state = 'sending'
RETURNING r.user_id;

-- name: settle_recipient!
-- The outcome of a claimed recipient: sent, failed, unknown, or pending again (certainly not delivered).
UPDATE broadcast_recipients SET state = $3, error = $4,
    sent_at = CASE WHEN $3 = 'sent' THEN now() END
WHERE broadcast_id = $1 AND user_id = $2 AND state = 'sending';

-- name: settle_blocked!
WITH settled AS (
    UPDATE broadcast_recipients SET state = 'blocked', error = $3
    WHERE broadcast_id = $1 AND user_id = $2 AND state = 'sending'
    RETURNING user_id
)
UPDATE users SET blocked_at = now() WHERE id IN (SELECT user_id FROM settled);

-- name: recipient_counts^
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'sent') AS sent,
       count(*) FILTER (WHERE state = 'blocked') AS blocked,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       count(*) FILTER (WHERE state = 'unknown') AS unknown,
       count(*) FILTER (WHERE state IN ('pending', 'sending')) AS waiting
FROM broadcast_recipients WHERE broadcast_id = $1;

-- name: store_counts^
-- The counts as they stand, kept on the broadcast; sending → done when nobody is left waiting.
WITH c AS (
    SELECT count(*) FILTER (WHERE state = 'sent') AS sent,
           count(*) FILTER (WHERE state = 'blocked') AS blocked,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           count(*) FILTER (WHERE state = 'unknown') AS unknown,
           count(*) FILTER (WHERE state IN ('pending', 'sending')) AS waiting
    FROM broadcast_recipients WHERE broadcast_id = $1
)
UPDATE broadcasts b SET sent = c.sent, blocked = c.blocked, failed = c.failed, unknown = c.unknown,
    state = CASE WHEN b.state = 'sending' AND c.waiting = 0 THEN 'done' ELSE b.state END,
    finished_at = CASE WHEN b.state = 'sending' AND c.waiting = 0 THEN now() ELSE b.finished_at END
FROM c WHERE b.id = $1
RETURNING b.*, c.waiting;
