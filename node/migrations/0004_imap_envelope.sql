-- The IMAP ENVELOPE of each message, formatted once when it is stored
-- (lib/imap_format from the envelope JSON), so that FETCH ENVELOPE copies
-- it instead of parsing JSON per message and fetch. NULL for rows stored
-- before this column, and for envelopes that are not valid UTF-8 text
-- (raw 8-bit header bytes): FETCH then formats from the JSON.
ALTER TABLE messages ADD COLUMN imap_envelope text;
