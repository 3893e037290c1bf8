-- Email ownership (issue 12, item 3), browser-bound OAuth states (item 11) and refresh-token
-- succession for the concurrent-refresh grace (low items). Keep in step with ../postgres.

-- When the address in `email` was proven to belong to the account holder; NULL = unverified.
-- An unverified account may be used, but no provider identity is ever linked to it.
ALTER TABLE profiles ADD COLUMN email_verified_at INTEGER;
-- Accounts created by an OAuth sign-in got their address from a provider that confirmed it.
UPDATE profiles SET email_verified_at = created_at
WHERE password_hash IS NULL AND id IN (SELECT profile_id FROM oauth_identities);

-- One row per verification link sent. Only the SHA-256 of the token is stored; the link is
-- bound to the address it was sent to, works once, and expires.
CREATE TABLE email_verifications (
    token_hash  TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX email_verifications_profile ON email_verifications (profile_id, created_at);

-- SHA-256 of the nonce in the browser cookie `/start` set; the callback must present it.
ALTER TABLE oauth_states ADD COLUMN browser_nonce_hash TEXT NOT NULL DEFAULT '';

-- The token a refresh issued in exchange for this one: lets a concurrent refresh with the
-- immediately previous token be told apart from a replay of an older one.
ALTER TABLE refresh_tokens ADD COLUMN replaced_by TEXT;
