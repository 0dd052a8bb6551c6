-- Referral links and the bonuses they earn (shopbot/payments/referrals.py).

-- name: claim_referral_code$
-- $1 user, $2 a fresh random code: the user's code, given the first time it is asked for and the same
-- for ever after. A code another user already holds raises a unique violation (the caller draws again).
UPDATE users SET referral_code = coalesce(referral_code, $2) WHERE id = $1 RETURNING referral_code;

-- name: bind_invitee^
-- $1 the user who started the bot, $2 the code from their link, $3 seconds a user counts as new.
-- New means: never bound, first seen within $3 seconds, and nothing done with money yet (no invoice,
-- order or ledger account). Self-invites, unknown codes, a second link and two users inviting each other
-- match nothing. One statement, so two links pressed at once bind at most one inviter.
UPDATE users u SET invited_by = inviter.id, invited_at = now()
FROM users inviter
WHERE u.id = $1 AND inviter.referral_code = $2 AND inviter.id <> u.id
  AND u.invited_by IS NULL AND inviter.invited_by IS DISTINCT FROM u.id
  AND u.first_seen_at > now() - make_interval(secs => $3::float8)
  AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.user_id = u.id)
  AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)
  AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.user_id = u.id)
RETURNING inviter.id AS inviter_id;

-- name: inviter_earning^
-- $1 invitee, $2 months a bonus is paid for: the inviter their top-ups still earn a bonus, if any.
SELECT invited_by AS inviter_id FROM users
WHERE id = $1 AND invited_by IS NOT NULL AND invited_at + make_interval(months => $2::int) > now();

-- name: record_referral_bonus!
-- In the transaction that posted the bonus movement; a replay of it finds the row and adds nothing.
INSERT INTO referral_bonuses (invoice_id, inviter_id, invitee_id, movement_id, amount, currency)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (invoice_id) DO NOTHING;

-- name: flag_referral_bonus^
-- Heleket reported the top-up behind a paid bonus refunded: the operator sees the bonus flagged.
UPDATE referral_bonuses SET flagged = $2, flagged_at = now()
WHERE invoice_id = $1 AND flagged IS NULL
RETURNING inviter_id, amount, currency;

-- name: referral_summary^
-- What /referral shows its owner: how many joined through the link, and what it earned.
SELECT (SELECT count(*) FROM users WHERE invited_by = $1) AS invited,
       (SELECT count(*) FROM referral_bonuses WHERE inviter_id = $1) AS bonuses,
       (SELECT coalesce(sum(amount), 0) FROM referral_bonuses WHERE inviter_id = $1) AS earned;

-- name: recent_referral_bonuses
-- The owner's last $2 bonuses, newest first (no names of invitees: the amount and the day are enough).
SELECT amount, currency, created_at, flagged IS NOT NULL AS flagged
FROM referral_bonuses WHERE inviter_id = $1 ORDER BY created_at DESC, invoice_id DESC LIMIT $2;

-- name: inviter_of^
-- Admin user lookup: who invited the user, and when.
SELECT i.id, i.username, i.first_name, u.invited_at
FROM users u JOIN users i ON i.id = u.invited_by WHERE u.id = $1;

-- name: invitees_of
-- Admin user lookup: the user's last $2 invitees, with what each earned them and any flagged bonus.
SELECT u.id, u.username, u.first_name, u.invited_at,
       coalesce(sum(b.amount), 0) AS earned, count(b.invoice_id) FILTER (WHERE b.flagged IS NOT NULL) AS flagged,
       count(*) OVER () AS total
FROM users u LEFT JOIN referral_bonuses b ON b.invitee_id = u.id AND b.inviter_id = $1
WHERE u.invited_by = $1
GROUP BY u.id
ORDER BY u.invited_at DESC, u.id DESC
LIMIT $2;

-- name: referral_figures^
-- The dashboard's period ($1 its start): users who joined through a link, bonuses paid, and flagged ones.
SELECT (SELECT count(*) FROM users WHERE invited_at >= $1) AS invited,
       (SELECT count(*) FROM referral_bonuses WHERE created_at >= $1) AS bonuses,
       (SELECT coalesce(sum(amount), 0) FROM referral_bonuses WHERE created_at >= $1) AS paid,
       (SELECT count(*) FROM referral_bonuses WHERE flagged IS NOT NULL AND created_at >= $1) AS flagged;

-- name: top_inviters
-- The dashboard's period ($1 its start): the $2 inviters whose links earned most, with their invitees.
SELECT i.id, i.username, i.first_name, sum(b.amount) AS paid, count(DISTINCT b.invitee_id) AS paying
FROM referral_bonuses b JOIN users i ON i.id = b.inviter_id
WHERE b.created_at >= $1
GROUP BY i.id
ORDER BY paid DESC, i.id
LIMIT $2;
