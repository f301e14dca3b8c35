-- Leases: one writer per named resource ("shard/N" now; relay queues and
-- cluster singletons later). Taking over a lease that another holder (or
-- another process instance of the same node) held bumps its epoch; stores
-- fence their writes with it.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder_id bigint NOT NULL REFERENCES nodes (id),
    instance text NOT NULL,
    epoch bigint NOT NULL CHECK (epoch > 0),
    expires_at timestamptz NOT NULL
);
CREATE INDEX leases_holder ON leases (holder_id);

ALTER TABLE nodes ADD COLUMN instance text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN lmtp_address text NOT NULL DEFAULT '';
