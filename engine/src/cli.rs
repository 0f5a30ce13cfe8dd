//! The `volley` command line.
