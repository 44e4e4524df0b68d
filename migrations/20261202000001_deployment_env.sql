-- The variables a deployment's pods get, copied from env_vars when the deployment is requested
-- (sealed values stay sealed: same ciphertext, same nonce). A rollback copies the snapshot of the
-- deployment that ran the release it restores, so the release comes back with the values it ran
-- with, not today's. Deployments from before this table have env_snapshot = false and read
-- env_vars as they did.
ALTER TABLE deployments ADD COLUMN env_snapshot BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE deployment_env (
    deployment_id  BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('plain', 'secret', 'secret_ref')),
    value          TEXT,
    ciphertext     BYTEA,
    nonce          BYTEA,
    ref_name       TEXT,
    ref_key        TEXT,
    PRIMARY KEY (deployment_id, name)
);
