-- Outbound egress: routes (smarthost or direct MX, like a Postfix
-- transport map), per-recipient-domain rules, DKIM keys, and the public
-- name and addresses relays register with (for `mailctl domain dns`).
-- change_log.kind: 5 route, 6 route rule, 7 DKIM key.

ALTER TABLE nodes ADD COLUMN public_name text NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN public_addresses text[] NOT NULL DEFAULT '{}';

-- kind: 1 smarthost, 2 direct MX (mc.RouteKind); tls: mc.RouteTls.
-- AUTH secrets are references (an environment variable name or a file
-- path on the relay), never the secret.
CREATE TABLE routes (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind smallint NOT NULL CHECK (kind IN (1, 2)),
    host text NOT NULL DEFAULT '',
    port integer NOT NULL DEFAULT 0 CHECK (port BETWEEN 0 AND 65535),
    tls smallint NOT NULL DEFAULT 0 CHECK (tls IN (0, 1, 2)),
    auth_user text NOT NULL DEFAULT '',
    secret_env text NOT NULL DEFAULT '',
    secret_file text NOT NULL DEFAULT '',
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (secret_env = '' OR secret_file = '')
);
-- At most one default route.
CREATE UNIQUE INDEX routes_one_default ON routes (is_default) WHERE is_default;

CREATE TABLE route_rules (
    id bigserial PRIMARY KEY,
    domain text NOT NULL UNIQUE,
    route_id bigint NOT NULL REFERENCES routes (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_rules_route ON route_rules (route_id);

-- alg: 1 RSA, 2 Ed25519 (mc.DkimAlg). private_sealed is the PKCS#8 PEM
-- sealed with AES-256-GCM under the controller's secrets_key_file
-- (lib/secretbox: "sb1:" + base64 of nonce, ciphertext and tag), never
-- the PEM itself.
CREATE TABLE dkim_keys (
    id bigserial PRIMARY KEY,
    domain_id bigint NOT NULL REFERENCES domains (id),
    selector text NOT NULL,
    alg smallint NOT NULL CHECK (alg IN (1, 2)),
    bits integer NOT NULL DEFAULT 0,
    private_sealed text NOT NULL,
    public_b64 text NOT NULL,
    active boolean NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, selector)
);
