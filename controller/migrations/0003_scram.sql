-- SCRAM-SHA-256 verifiers (lib/scram.h format), computed by mailctl next
-- to the argon2id hash and published with it to mailbox nodes only. ''
-- for accounts created before, or whose password has no verifier: they
-- log in with PLAIN until their password is set again.
ALTER TABLE accounts ADD COLUMN scram_sha256 text NOT NULL DEFAULT '';
