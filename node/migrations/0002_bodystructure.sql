-- The MIME structure of each message (lib/mime as JSON), for IMAP
-- BODY/BODYSTRUCTURE and section fetches without re-reading the blob.
-- NULL for messages stored before it was computed.
ALTER TABLE messages ADD COLUMN bodystructure jsonb;
