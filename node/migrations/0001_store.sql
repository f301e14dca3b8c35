-- Mailbox store metadata (one database may serve every shard). Message
-- bytes live in the blob store, keyed by SHA-256; rows here point at them.

-- The highest lease epoch that has claimed each shard. Every write
-- transaction raises or confirms it first and aborts when a newer owner
-- exists (see node/store.c: fencing).
CREATE TABLE shard_fence (
    shard integer PRIMARY KEY,
    epoch bigint NOT NULL CHECK (epoch > 0)
);

-- account_id is the controller's immutable account id.
CREATE TABLE mailboxes (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL,
    shard integer NOT NULL,
    name text NOT NULL,
    special_use text,           -- \Sent, \Drafts, ... (RFC 6154)
    uidvalidity bigint NOT NULL,
    uidnext bigint NOT NULL DEFAULT 1,
    highestmodseq bigint NOT NULL DEFAULT 1,
    subscribed boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name)
);
CREATE INDEX mailboxes_shard ON mailboxes (shard);

-- delivery_id makes a delivery idempotent: a relay that redelivers after a
-- crash (same queue id and recipient) gets the first result back.
CREATE TABLE messages (
    mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid bigint NOT NULL,
    modseq bigint NOT NULL,
    blob_sha256 text NOT NULL,
    size bigint NOT NULL,
    internaldate timestamptz NOT NULL,
    flags text[] NOT NULL DEFAULT '{}',
    delivery_id text,
    envelope jsonb,             -- parsed header fields for IMAP ENVELOPE
    PRIMARY KEY (mailbox_id, uid),
    UNIQUE (mailbox_id, delivery_id)
);
CREATE INDEX messages_blob ON messages (blob_sha256);
