-- One row per chat turn a gateway opened: the user's message, then (once the reply has
-- streamed) the stored reply, the model and the tokens it cost. `day` is the UTC day whose
-- message quota the turn spent, so a turn that failed before any reply can give it back.
CREATE TABLE chat_turns (
    id                 TEXT PRIMARY KEY,
    profile_id         TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    conversation_id    TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_message_id    BIGINT NOT NULL,
    reply_message_id   BIGINT,
    day                BIGINT NOT NULL,
    model              TEXT NOT NULL DEFAULT '',
    prompt_tokens      BIGINT NOT NULL DEFAULT 0,
    completion_tokens  BIGINT NOT NULL DEFAULT 0,
    finish_reason      TEXT,
    created_at         BIGINT NOT NULL,
    completed_at       BIGINT
);
CREATE INDEX chat_turns_conversation ON chat_turns (conversation_id, created_at);
