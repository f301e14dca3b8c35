-- What the IMAP server needs besides delivery (node/store_imap.c): the
-- expunged UIDs, scans by MODSEQ, canonical flags, and running totals per
-- mailbox for quotas and STATUS.

-- Every UID removed from a mailbox, with the MODSEQ of its removal: a
-- session that knows MODSEQ m learns the expunges after m (untagged
-- EXPUNGE, QRESYNC VANISHED). UIDs are never reused within a mailbox.
CREATE TABLE expunged (
    mailbox_id bigint NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    uid bigint NOT NULL,
    modseq bigint NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged (mailbox_id, modseq);

-- What changed in a mailbox since MODSEQ m.
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);

-- Flags are kept canonical (distinct, no empty ones, byte order) by every
-- writer through this function, so readers return them with a plain
-- array_to_string(flags, ' ') and comparisons are equality.
CREATE FUNCTION imap_flags(f text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT DISTINCT x COLLATE "C" FROM unnest(f) AS x
                 WHERE x <> '' ORDER BY 1)
$$;
UPDATE messages SET flags = imap_flags(flags) WHERE flags <> '{}';

-- Running totals per mailbox, so an account's usage (quota check on every
-- delivery, append and copy) is a sum over its few mailboxes (through the
-- (account_id, name) unique index) instead of over all its messages. They
-- are kept by statement triggers, in the transaction that inserts or
-- deletes messages, whatever the code path (deliver, append, copy, move,
-- expunge, cascade). Messages never change mailbox or size by UPDATE.
ALTER TABLE mailboxes
    ADD COLUMN message_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN message_bytes bigint NOT NULL DEFAULT 0;
UPDATE mailboxes b SET message_count = s.n, message_bytes = s.bytes
FROM (SELECT mailbox_id, count(*) AS n, sum(size) AS bytes
      FROM messages GROUP BY mailbox_id) s
WHERE b.id = s.mailbox_id;

CREATE FUNCTION mailbox_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign bigint := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
BEGIN
    UPDATE mailboxes b
    SET message_count = b.message_count + sign * s.n,
        message_bytes = b.message_bytes + sign * s.bytes
    FROM (SELECT mailbox_id, count(*) AS n, sum(size) AS bytes
          FROM changed_rows GROUP BY mailbox_id) s
    WHERE b.id = s.mailbox_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_totals_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailbox_totals();
CREATE TRIGGER messages_totals_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mailbox_totals();

-- UIDVALIDITY of new mailboxes: from a sequence that starts at the clock,
-- so a mailbox deleted and recreated (even within one second) never gets
-- a UIDVALIDITY it had before and clients drop their cached UIDs.
CREATE SEQUENCE uidvalidity_seq;
SELECT setval('uidvalidity_seq',
              greatest(extract(epoch FROM now())::bigint,
                       (SELECT coalesce(max(uidvalidity), 1) FROM mailboxes)));
