-- The users table of `password-bearer --users postgres://...` (the
-- `postgres` feature): the users file's shape, one row per user. The server
-- runs this when the table is missing (compiled in from this file); run it
-- yourself (psql -f) to create the table ahead, with its owner of your
-- choice, and grant the server's role SELECT alone.
--
-- Only username and hashed_password are required, as in the file:
--   hashed_password  an argon2 PHC string (`password-bearer hash-password`)
--   disabled         NULL reads as active, shown as null by /users/me
--   scopes           what /token may grant this user; NULL is none
--
-- A change made with plain SQL (INSERT, UPDATE, DELETE) counts on every
-- instance within 0.5 s, with no reload (docs/scaling-out.md).
CREATE TABLE IF NOT EXISTS users (
    username        text PRIMARY KEY,
    hashed_password text NOT NULL,
    email           text,
    full_name       text,
    disabled        boolean,
    scopes          text[]
);
