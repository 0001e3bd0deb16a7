//! The HTTP listener and admin access.

use super::knobs::{Knobs, Section};

/// Shortest admin token accepted: a short token is guessable through the 401s.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// HTTP listener and admin access.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `HOST`: address to bind (the standalone server; an embedding app binds its own).
    pub host: String,
    /// `PORT`: port to bind; `0` picks a free one (the standalone server only).
    pub port: u16,
    /// `HTTP_WORKERS`: worker threads; `0` means one per core.
    pub workers: usize,
    /// `SYSTEM_ADMIN_TOKEN`: Bearer token for `/api/v1/system/*`; generated when unset.
    pub admin_token: Option<String>,
    /// `SYSTEM_ADMIN_TOKEN_FILE`: where a generated token is written (mode 0600) and read
    /// back at the next start.
    pub admin_token_file: String,
    /// `SYSTEM_MAX_BODY_BYTES`: larger request bodies on system routes get 413.
    pub max_body_bytes: usize,
}

impl Section for ServerSettings {
    fn read(k: &mut Knobs<'_>) -> Self {
        k.section("Server");
        let host = k.string(
            "HOST",
            "0.0.0.0",
            "Address the server binds (the standalone server; not read when embedding).",
        );
        let port = k.int(
            "PORT",
            8080,
            0,
            u16::MAX as u64,
            "Port the server binds, 0 picks a free port (the standalone server; not read when embedding).",
        ) as u16;
        let workers = k.int(
            "HTTP_WORKERS",
            0,
            0,
            1024,
            "HTTP worker threads, 0 = one per core (the standalone server; not read when embedding).",
        ) as usize;
        let admin_token = k.optional(
            "SYSTEM_ADMIN_TOKEN",
            "Bearer token for /api/v1/system/* (at least 16 characters). Unset: one is generated at start, or read back from the file below.",
        );
        if let Some(t) = &admin_token {
            if t.chars().count() < MIN_ADMIN_TOKEN_CHARS {
                // Never echo a token, not even a bad one.
                k.problem_hidden(
                    "SYSTEM_ADMIN_TOKEN",
                    &format!(
                        "too short ({} characters); use at least {MIN_ADMIN_TOKEN_CHARS}, or unset it to have one generated",
                        t.chars().count()
                    ),
                );
            }
        }
        let admin_token_file = k.string(
            "SYSTEM_ADMIN_TOKEN_FILE",
            ".selfheal/admin-token",
            "Where a generated admin token is written (mode 0600) and read back at the next start.",
        );
        let max_body_bytes = k.int(
            "SYSTEM_MAX_BODY_BYTES",
            65_536,
            1,
            1 << 30,
            "Request bodies larger than this on /api/v1/system/* get 413.",
        ) as usize;
        ServerSettings {
            host,
            port,
            workers,
            admin_token,
            admin_token_file,
            max_body_bytes,
        }
    }
}
