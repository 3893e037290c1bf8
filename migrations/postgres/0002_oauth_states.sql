-- Pending OAuth2 sign-ins: one row per authorization request, deleted when its callback
-- arrives (single use) or ignored once expired. Holds the PKCE verifier, never sent to the browser.
CREATE TABLE oauth_states (
    state          TEXT PRIMARY KEY,
    provider       TEXT NOT NULL,
    code_verifier  TEXT NOT NULL,
    birth_year     BIGINT,
    consent_terms  BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
