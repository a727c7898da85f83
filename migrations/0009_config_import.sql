-- Undo plans of configuration imports in flight. A row is written (and committed) before an
-- import touches Redis, and deleted in the import's own transaction, so a row that outlives its
-- import belongs to one whose Postgres changes never committed: its Redis writes must be undone.
-- The recovery pass (every instance with the admin plane) applies and deletes such rows.
CREATE TABLE config_import_journal (
    import_id  text PRIMARY KEY,
    undo       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
