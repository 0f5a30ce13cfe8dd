//! # volley-flight: Volley's data plane
//!
//! Moves objects between nodes over [Arrow Flight]. An *object* is one Arrow schema plus a
//! sequence of record batches, named on the wire by an opaque [`Ticket`] chosen by the engine.
//! Every node runs a [`FlightServer`] over its object store (an [`ObjectSource`]); other nodes
//! use a [`FlightClient`] to fetch objects from it (`do_get`) or push objects to it
//! (`do_put`, e.g. shuffle blocks sent to their reducer). This crate knows Arrow, tickets and
//! the wire; it knows nothing of the engine's types.
//!
//! ```text
//!        fetching node                                        serving node
//!  +---------------------------+   do_get(ticket)    +-------------------------------+
//!  | FlightClient::fetch_stream| ------------------> | FlightServer::do_get          |
//!  |   decode schema, batches  | <------------------ |   ObjectSource::get(ticket)   |
//!  |   -> ObjectStream         |  schema, batch, ... |   -> ObjectStream, encoded    |
//!  |                           |  (pulled, streamed) |      one batch at a time      |
//!  |                           |                     |                               |
//!  | FlightClient::push        |   do_put: schema    | FlightServer::do_put          |
//!  |   descriptor = ticket     | ------------------> |   decode, check end marker    |
//!  |   batches, end marker     |   batch, ..., end   |   -> ObjectSource::put(...)   |
//!  |                           | <------------------ |                               |
//!  +---------------------------+      PutResult      +-------------------------------+
//! ```
//!
//! Large objects stream: the server encodes a batch only when the client is ready for it, and
//! [`FlightClient::fetch_stream`] hands batches over one at a time. Errors are one enum,
//! [`Error`], mapped to and from gRPC status codes in one place (see [`Error::from_status`]).
//!
//! ## Wire protocol
//!
//! * **do_get**: request = the ticket's bytes. Response = one schema message (always first,
//!   even for an object with no batches), then one message per batch (a batch larger than
//!   7/8 of [`FlightConfig::max_message_bytes`] is split by rows). Dictionary columns arrive
//!   hydrated (as their value type). A failure mid-object ends the stream with an error
//!   status, never with a clean end.
//! * **do_put**: the first message is the schema and carries a `CMD` descriptor whose bytes are
//!   the ticket (a `PATH` descriptor with one element is accepted too, its UTF-8 bytes being the
//!   ticket). The last message carries the bytes `volley-flight/end-of-object` as its
//!   `app_metadata`: gRPC client streams cannot carry an error, so a sender that fails
//!   mid-object just stops, and the missing marker is how the receiver knows the object is
//!   truncated and must not be stored.
//!   The response is one empty `PutResult` once the object is stored.
//! * **do_action `ping`**: answers one result whose body is `pong`.
//!
//! ## Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> volley_flight::Result<()> {
//! use std::sync::Arc;
//! use arrow::array::{Int64Array, StringArray};
//! use arrow::datatypes::{DataType, Field, Schema};
//! use arrow::record_batch::RecordBatch;
//! use volley_flight::{serve, FlightClient, MemorySource, Ticket};
//!
//! // A node serving an in-memory store on a free port.
//! let store = Arc::new(MemorySource::new());
//! let server = serve("127.0.0.1:0".parse().unwrap(), store.clone()).await?;
//!
//! // Another node pushes an object to it, then fetches it back.
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("name", DataType::Utf8, false),
//! ]));
//! let batch = RecordBatch::try_new(
//!     schema.clone(),
//!     vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(StringArray::from(vec!["a", "b"]))],
//! )?;
//! let client = FlightClient::connect(server.local_addr()).await?;
//! let ticket = Ticket::from(b"block-0".to_vec());
//! client.push(ticket.clone(), schema.clone(), vec![batch.clone()]).await?;
//! assert!(store.contains(&ticket));
//!
//! let (schema_back, batches) = client.fetch(&ticket).await?;
//! assert_eq!(schema_back, schema);
//! assert_eq!(batches, vec![batch]);
//!
//! // Unknown objects are `NotFound`, naming the ticket in hex.
//! let err = client.fetch(&Ticket::from(vec![0xca, 0xfe])).await.unwrap_err();
//! assert_eq!(err.to_string(), "object cafe not found");
//!
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! [Arrow Flight]: https://arrow.apache.org/docs/format/Flight.html

mod client;
mod config;
mod error;
mod protocol;
mod server;
mod source;
mod ticket;

#[cfg(test)]
mod test_util;

pub use client::{FlightClient, FlightTarget};
pub use config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, FlightConfig};
pub use error::{Error, Result};
pub use server::{FlightServer, ServerHandle, serve, serve_with};
pub use source::{MemorySource, ObjectSource, ObjectStream};
pub use ticket::Ticket;
