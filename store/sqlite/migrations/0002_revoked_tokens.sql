-- Revoked JWT ids (api/auth's RevocationStore).
CREATE TABLE revoked_tokens (
    jti           TEXT    PRIMARY KEY,
    expires_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at_ms);
