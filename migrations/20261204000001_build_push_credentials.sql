-- Each build's own registry credential (pipeline/registry.rs): only its hash, valid while the
-- build runs. Builds no longer share one push credential.
ALTER TABLE builds ADD COLUMN push_credential_hash bytea;
