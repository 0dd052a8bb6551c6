-- The operator's side: every admin action is audited, and settings an admin may change at runtime
-- (maintenance mode, prices) live here rather than in shopbot.toml.

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    admin_id   BIGINT NOT NULL,
    action     TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target     TEXT NOT NULL DEFAULT '',
    before     JSONB,
    after      JSONB,
    reason     TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);

-- Append-only, like the ledger: an audit that can be edited is not an audit.
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is refused', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

-- One row per setting; the value is JSON so each setting keeps its own shape.
CREATE TABLE shop_settings (
    name       TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    value      JSONB NOT NULL,
    updated_by BIGINT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
