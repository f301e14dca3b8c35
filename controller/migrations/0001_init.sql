-- Initial control-plane schema: the cluster's config version, the objects
-- the controller publishes, the change log deltas are built from, and the
-- nodes that follow it.

CREATE TABLE cluster (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL DEFAULT 0,
    shard_count integer NOT NULL CHECK (shard_count BETWEEN 1 AND 65536),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE domains (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- local_key is the lower-cased local part: addresses are unique
-- case-insensitively, displayed as created.
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    domain_id bigint NOT NULL REFERENCES domains (id),
    local_part text NOT NULL,
    local_key text NOT NULL,
    password_hash text NOT NULL,
    shard integer NOT NULL,
    quota_bytes bigint NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, local_key)
);

-- local_key '*' is the domain's catch-all.
CREATE TABLE aliases (
    id bigserial PRIMARY KEY,
    domain_id bigint NOT NULL REFERENCES domains (id),
    local_part text NOT NULL,
    local_key text NOT NULL,
    destinations text[] NOT NULL CHECK (cardinality(destinations) > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, local_key)
);

-- kind: 1 mailbox node, 2 relay (mc.NodeKind).
CREATE TABLE nodes (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind smallint NOT NULL,
    applied_version bigint NOT NULL DEFAULT 0,
    last_heartbeat timestamptz,
    registered_at timestamptz NOT NULL DEFAULT now(),
    pid integer NOT NULL DEFAULT 0,
    software text NOT NULL DEFAULT ''
);

-- kind: 1 domain, 2 account, 3 alias; op: 0 upsert, 1 delete.
CREATE TABLE change_log (
    version bigint NOT NULL,
    kind smallint NOT NULL,
    object_id bigint NOT NULL,
    op smallint NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX change_log_version ON change_log (version);
