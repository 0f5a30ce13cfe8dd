//! [`FlightConfig`]: the data plane's knobs. The engine's typed config owns their environment
//! variables and passes the values here; this crate only has the defaults.

use std::time::Duration;

/// Default for [`FlightConfig::max_message_bytes`]: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Default for [`FlightConfig::connect_timeout`]: 10 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings shared by [`FlightServer`](crate::FlightServer) and
/// [`FlightClient`](crate::FlightClient). Both ends of a connection should use the same
/// `max_message_bytes`.
///
/// ```
/// use volley_flight::FlightConfig;
/// let config = FlightConfig { max_message_bytes: 16 << 20, ..FlightConfig::default() };
/// assert_eq!(config.connect_timeout, volley_flight::DEFAULT_CONNECT_TIMEOUT);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlightConfig {
    /// Largest gRPC message either side sends or accepts (gRPC's own default is 4 MiB). A
    /// record batch is sent as one message when it fits in 7/8 of this; a larger batch is
    /// split by rows into several batches (same rows, same order), so object *content* always
    /// round-trips but batch *boundaries* are kept only for batches below that size.
    pub max_message_bytes: usize,
    /// How long [`FlightClient::connect`](crate::FlightClient::connect) waits for the TCP
    /// connection to be established.
    pub connect_timeout: Duration,
}

impl Default for FlightConfig {
    fn default() -> Self {
        FlightConfig {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl FlightConfig {
    /// Target size of one encoded batch: 7/8 of the message limit, leaving room for the IPC
    /// header and padding.
    pub(crate) fn split_bytes(&self) -> usize {
        (self.max_message_bytes - self.max_message_bytes / 8).max(1)
    }
}
