-- The Subject, From, To, Cc and Bcc header lines of each message, as they
-- are in it, kept when the message is stored (node/message.c), so that
-- SEARCH on those fields (the common client searches) does not read every
-- blob. NULL for rows stored before this column and for header lines that
-- are not UTF-8 text: SEARCH then reads the blob.
ALTER TABLE messages ADD COLUMN search_headers text;
