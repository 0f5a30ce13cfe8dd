//! `volley microbenchmark`.
