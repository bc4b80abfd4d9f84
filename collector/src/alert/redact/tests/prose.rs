//! Near misses: prose about secrets, which a diagnosis is made of, left alone.

use super::*;

#[test]
fn near_misses_are_left_alone() {
    for line in [
        "password reset succeeded for user 42",
        "tokenizer loaded (vocab 50257)",
        "max_tokens: 256",
        "token_count=17",
        "passwords do not match",
        "secretary: Jane",
        "secrets mounted: 3",
        "missing Authorization header",
        "authorization failed: invalid credentials",
        "authorization: denied",
        "Bearer authentication required",
        "task-0123456789abcdefghij0123 finished",
        "sk-learn is installed",
        "eyJ is how base64 JSON starts",
        "api.example.com v1.2.3 ok",
        "listening on 0.0.0.0:443",
        "user=bob email=bob@example.com",
        "AKIA is a prefix",
        "the token bucket refilled",
    ] {
        untouched(line);
    }
}

#[test]
fn prose_about_secrets_is_left_alone() {
    lines_untouched(&[
        "FATAL:  password authentication failed for user \"app\"",
        "Access denied for user 'root'@'172.18.0.3' (using password: YES)",
        "invalid password",
        "ERROR: invalid password for user bob",
        "token expired",
        "JWT token expired at 2024-01-01T00:00:00Z",
        "loading tokenizer from /models/bert",
        "Tokenizer: 50257 tokens",
        "api_key header missing",
        "Please provide a valid API key",
        "password reset email sent to bob@example.com",
        "secret \"db-credentials\" not found",
        "Secret db-credentials created",
        "Successfully authenticated with token",
        "Permission denied (publickey,password).",
        "sudo: 3 incorrect password attempts",
        "Authentication failed: bad credentials",
        "vault: permission denied (token lacks policy)",
        "openai.AuthenticationError: Incorrect API key provided",
        "ERROR: duplicate key value violates unique constraint \"users_pkey\"",
        "-----BEGIN CERTIFICATE-----",
        "Saving debug log to /var/log/letsencrypt/letsencrypt.log",
    ]);
}
