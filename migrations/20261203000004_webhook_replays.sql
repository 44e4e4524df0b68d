-- A signed delivery replayed under a new X-GitHub-Delivery id is recognised by its body: the
-- SHA-256 of the payload of every verified delivery. Rejected deliveries keep no hash (nor body).
ALTER TABLE webhook_deliveries ADD COLUMN payload_sha256 BYTEA;
CREATE INDEX webhook_deliveries_by_payload ON webhook_deliveries (payload_sha256)
    WHERE payload_sha256 IS NOT NULL;

-- Rejected deliveries are written by unauthenticated requests: they are kept bounded (the newest
-- per project, and the newest of those belonging to none), found through this index.
CREATE INDEX webhook_deliveries_rejected ON webhook_deliveries (project_id, received_at DESC)
    WHERE outcome = 'rejected';

-- Rejected rows written before the bound kept whatever the request said, at any length.
UPDATE webhook_deliveries
SET event = left(event, 64), repository = left(repository, 200), git_ref = left(git_ref, 200),
    commit_sha = left(commit_sha, 64), reason = left(reason, 500)
WHERE outcome = 'rejected';
