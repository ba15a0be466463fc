-- Runtime settings and the audit trail of operators' changes outside a job's history
-- (pauses, limits, settings, schedules). Shared by every dialect (see queries.sql).

-- name: audit_insert
INSERT INTO audit_log (at, actor, action, target, old_value, new_value, detail)
VALUES (:now, :actor, :action, :target, :old_value, :new_value, :detail);

-- name: audit_recent
SELECT * FROM audit_log ORDER BY id DESC LIMIT :limit;

-- name: audit_recent_for_target
SELECT * FROM audit_log WHERE target = :target ORDER BY id DESC LIMIT :limit;
