-- Control-plane schema (SQLite). Times are unix seconds (INTEGER) and flags are 0/1 so the same
-- queries and row decoding serve SQLite and PostgreSQL. Keep in step with ../postgres.

CREATE TABLE profiles (
    id                   TEXT PRIMARY KEY,
    email                TEXT NOT NULL UNIQUE,
    password_hash        TEXT,
    display_name         TEXT NOT NULL DEFAULT '',
    tier                 TEXT NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'plus', 'pro')),
    birth_year           INTEGER,
    consent_terms        INTEGER NOT NULL DEFAULT 0,
    consent_marketing    INTEGER NOT NULL DEFAULT 0,
    consent_voice_data   INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    password_changed_at  INTEGER NOT NULL
);

CREATE TABLE oauth_identities (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    profile_id  TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);

CREATE TABLE companions (
    id             TEXT PRIMARY KEY,
    owner_id       TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    persona        TEXT NOT NULL DEFAULT '',
    avatar         TEXT NOT NULL DEFAULT '',
    custom_avatar  INTEGER NOT NULL DEFAULT 0,
    voice          TEXT NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX companions_owner ON companions (owner_id, created_at);

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    companion_id  TEXT REFERENCES companions (id) ON DELETE SET NULL,
    title         TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE INDEX conversations_owner ON conversations (owner_id, created_at);

CREATE TABLE messages (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id  TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('user', 'companion', 'system')),
    content          TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

CREATE TABLE subscriptions (
    id                      TEXT PRIMARY KEY,
    profile_id              TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    tier                    TEXT NOT NULL CHECK (tier IN ('free', 'plus', 'pro')),
    status                  TEXT NOT NULL,
    stripe_customer_id      TEXT,
    stripe_subscription_id  TEXT UNIQUE,
    current_period_end      INTEGER,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);
CREATE INDEX subscriptions_profile ON subscriptions (profile_id);

-- Daily usage per account and kind (messages, voice_seconds, game_seconds, custom_avatars).
-- `reserved` is granted but not yet settled.
CREATE TABLE usage_records (
    profile_id  TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    day         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0,
    reserved    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (profile_id, day, kind)
);

-- One row per reservation key, so retried reserve/settle calls are answered, not repeated.
CREATE TABLE quota_reservations (
    profile_id  TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    idem_key    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    day         INTEGER NOT NULL,
    requested   INTEGER NOT NULL,
    granted     INTEGER NOT NULL,
    settled     INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (profile_id, idem_key)
);

CREATE TABLE game_sessions (
    id              TEXT PRIMARY KEY,
    profile_id      TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    companion_id    TEXT REFERENCES companions (id) ON DELETE SET NULL,
    game            TEXT NOT NULL,
    server_address  TEXT,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER
);
CREATE INDEX game_sessions_profile ON game_sessions (profile_id, started_at);

-- A family is one sign-in (session); every refresh replaces its live token with a new one.
CREATE TABLE refresh_tokens (
    token_hash   TEXT PRIMARY KEY,
    family_id    TEXT NOT NULL,
    profile_id   TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    family_started_us INTEGER NOT NULL,  -- microseconds: orders sessions begun in one second
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_profile ON refresh_tokens (profile_id, revoked_at);

CREATE TABLE moderation_records (
    id               TEXT PRIMARY KEY,
    profile_id       TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    conversation_id  TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    message_id       INTEGER,
    category         TEXT NOT NULL,
    action           TEXT NOT NULL,
    detail           TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL
);
CREATE INDEX moderation_profile ON moderation_records (profile_id, created_at);

-- Access-token signing keys. The newest signs; older ones stay published until `expires_at`.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    private_der  TEXT NOT NULL,
    public_x     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER,
    expires_at   INTEGER
);
