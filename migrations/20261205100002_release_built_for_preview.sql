-- A release built from a pull request's head for its preview: never "the latest release" a plain
-- deploy picks (unmerged code), and it stays marked after the preview and its builds are deleted.
ALTER TABLE releases ADD COLUMN built_for_preview BOOLEAN NOT NULL DEFAULT false;
