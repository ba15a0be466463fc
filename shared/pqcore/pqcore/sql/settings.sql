-- Runtime settings and the audit trail of operators' changes outside a job's history
-- (pauses, limits, settings, schedules). Shared by every dialect (see queries.sql).

-- name: audit_insert
INSERT INTO audit_log (at, actor, action, target, old_value, new_value, detail)
VALUES (:now, :actor, :action, :target, :old_value, :new_value, :detail);

-- name: audit_recent
SELECT * FROM audit_log ORDER BY id DESC LIMIT :limit;

-- name: audit_recent_for_target
SELECT * FROM audit_log WHERE target = :target ORDER BY id DESC LIMIT :limit;

-- name: settings_all
SELECT * FROM settings ORDER BY name;

-- name: setting_get
SELECT * FROM settings WHERE name = :name;

-- name: setting_upsert
INSERT INTO settings (name, value, updated_at, updated_by)
VALUES (:name, :value, :now, :actor)
ON CONFLICT (name) DO UPDATE
   SET value = excluded.value, updated_at = excluded.updated_at,
       updated_by = excluded.updated_by;

-- name: setting_delete
DELETE FROM settings WHERE name = :name;
