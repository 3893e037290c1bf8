-- One row that a node rotating the signing key updates first, so nodes that notice an old
-- key at the same moment rotate it once (the second waits, then finds the new key).
CREATE TABLE signing_key_lock (
    id       INTEGER PRIMARY KEY,
    taken_at BIGINT NOT NULL DEFAULT 0
);
INSERT INTO signing_key_lock (id, taken_at) VALUES (1, 0);
