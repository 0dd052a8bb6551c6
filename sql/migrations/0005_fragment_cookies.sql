-- The Fragment session cookies that KYC purchases send (the raw "stel_ssid=…; stel_token=…" header).
-- A secret store, not a log: nothing else in the database may hold these values, and no log line
-- shows them. Rows are appended, newest = current, so an operator can see where the cookies in use
-- came from (the config file, an import, `shopbot fragment login`, the refresher) and when; the
-- history is pruned to the last few rows so stale secrets do not pile up.
CREATE TABLE fragment_cookies (
    id           BIGSERIAL PRIMARY KEY,
    -- Normalised "name=value; name=value"; a session cookie and the Telegram login are required.
    header       TEXT NOT NULL CHECK (header ~ '(^|; )stel_ssid=[^;]' AND header ~ '(^|; )stel_token=[^;]'),
    source       TEXT NOT NULL CHECK (source IN ('config', 'import', 'login', 'refresh')),
    obtained_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The earliest expiry of the session cookies (stel_ssid, stel_token, stel_ton_token) when known.
    expires_at   TIMESTAMPTZ,
    -- When the refresher last looked at the session these cookies belong to.
    checked_at   TIMESTAMPTZ,
    -- When the operator was told this session was lost: set once, so one lost session is one alert.
    alerted_at   TIMESTAMPTZ
);
CREATE INDEX fragment_cookies_source_idx ON fragment_cookies (source, id DESC);
