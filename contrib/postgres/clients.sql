-- The clients table of `password-bearer --clients postgres://...` (the
-- `clients` and `postgres` features): the clients file's shape, one row per
-- client. The server runs this when the table is missing (compiled in from
-- this file), and so does `password-bearer clients add`; run it yourself
-- (psql -f) to create the table ahead, with its owner of your choice, and
-- grant the server's role SELECT alone.
--
--   secret_hash  the secret's stored form, sha256$ and 43 base64url
--                characters (`password-bearer hash-client-secret`); any
--                other form (a secret in clear, an argon2 hash) is refused
--   scopes       what the client credentials grant may give the client
--   introspect   whether the client may call POST /introspect
--
-- Each server keeps the whole set in memory and reads the table again
-- every 0.5 s, all or nothing: a row it refuses keeps the set it serves,
-- and one log line names the client (docs/clients.md).
CREATE TABLE IF NOT EXISTS clients (
    client_id   text PRIMARY KEY,
    secret_hash text NOT NULL,
    scopes      text[] NOT NULL DEFAULT '{}',
    introspect  boolean NOT NULL DEFAULT false
);
