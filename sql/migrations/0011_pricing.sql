-- Automatic prices (issue 17): the repricer changes prices too, so the audit log says who acted. An admin's
-- entry names the admin; the repricer's has the actor 'pricing' and no admin.

ALTER TABLE audit_log ADD COLUMN actor TEXT NOT NULL DEFAULT 'admin' CHECK (actor ~ '^[a-z_]{1,40}$');
ALTER TABLE audit_log ALTER COLUMN admin_id DROP NOT NULL;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_admin_named CHECK (actor <> 'admin' OR admin_id IS NOT NULL);
-- The admin's Prices screen asks for the repricer's newest entry.
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id DESC);
