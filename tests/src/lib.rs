//! Cross-crate and cross-process integration tests for Volley.
//!
//! The tests live in `tests/`; `src/bin/` holds small helper programs the tests start as
//! separate processes (e.g. `shm-reader`, which maps a store segment zero-copy).
