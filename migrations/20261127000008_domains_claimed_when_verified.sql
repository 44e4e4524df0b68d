-- A hostname belongs to whoever proves control of it: several projects may have it pending, only one
-- may have it verified. (Unique on insert let anyone reserve a name they do not own.)
ALTER TABLE domains DROP CONSTRAINT domains_hostname_key;
CREATE UNIQUE INDEX domains_verified_hostname ON domains (hostname) WHERE verified_at IS NOT NULL;
CREATE INDEX domains_by_hostname ON domains (hostname);
