//! The fetching side: [`FlightClient`] pulls objects from, and pushes objects to, a
//! [`FlightServer`](crate::FlightServer) on another node.
//!
//! A client is one HTTP/2 connection (a tonic `Channel`); it is cheap to clone, and clones
//! share the connection, so concurrent fetches from one node need one `connect` only. Every
//! error it returns names the server it talked to.

use std::net::SocketAddr;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::FlightClient as ArrowFlightClient;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use futures::channel::oneshot;
use futures::{StreamExt, TryStreamExt};
use tonic::transport::{Channel, Endpoint};

use crate::error::error_chain;
use crate::protocol::{self, PING_ACTION, PONG};
use crate::{Error, FlightConfig, ObjectStream, Result, Ticket};

/// Names a Flight server to connect to: a [`SocketAddr`], or a string — a URI such as
/// `"http://10.0.0.2:8815"`, or a bare `"host:port"` (taken as `http://host:port`).
pub trait FlightTarget {
    /// The URI to connect to.
    fn to_uri(&self) -> String;
}

impl FlightTarget for SocketAddr {
    fn to_uri(&self) -> String {
        format!("http://{self}")
    }
}

impl FlightTarget for str {
    fn to_uri(&self) -> String {
        if self.contains("://") {
            self.to_owned()
        } else {
            format!("http://{self}")
        }
    }
}

impl FlightTarget for String {
    fn to_uri(&self) -> String {
        self.as_str().to_uri()
    }
}

impl<T: FlightTarget + ?Sized> FlightTarget for &T {
    fn to_uri(&self) -> String {
        (**self).to_uri()
    }
}

/// A connection to one node's [`FlightServer`](crate::FlightServer).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> volley_flight::Result<()> {
/// use std::sync::Arc;
/// use volley_flight::{serve, FlightClient, MemorySource};
///
/// let server = serve("127.0.0.1:0".parse().unwrap(), Arc::new(MemorySource::new())).await?;
/// let client = FlightClient::connect(server.local_addr()).await?;
/// client.ping().await?;
/// server.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FlightClient {
    inner: FlightServiceClient<Channel>,
    uri: String,
    config: FlightConfig,
}

impl FlightClient {
    /// Connects to the server at `target` with the default [`FlightConfig`].
    ///
    /// Fails with [`Error::InvalidInput`] for an address that is not a URI, and with
    /// [`Error::Transport`] when nothing answers there.
    pub async fn connect(target: impl FlightTarget) -> Result<Self> {
        Self::connect_with(target, FlightConfig::default()).await
    }

    /// [`connect`](Self::connect) with an explicit [`FlightConfig`].
    pub async fn connect_with(target: impl FlightTarget, config: FlightConfig) -> Result<Self> {
        let uri = target.to_uri();
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "invalid flight server address {uri:?}: {}",
                    error_chain(&e)
                ))
            })?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_adaptive_window(true);
        let channel = endpoint.connect().await.map_err(|e| {
            Error::Transport(format!(
                "cannot connect to flight server {uri}: {}",
                error_chain(&e)
            ))
        })?;
        let limit = config.max_message_bytes;
        let inner = FlightServiceClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        Ok(FlightClient { inner, uri, config })
    }

    /// The URI of the server this client talks to.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Fetches a whole object into memory: its schema and all its batches.
    ///
    /// Fails with [`Error::NotFound`] if the server does not hold `ticket`.
    pub async fn fetch(&self, ticket: &Ticket) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.fetch_stream(ticket).await?.try_collect().await
    }

    /// Starts fetching an object: returns once its schema has arrived; its batches then
    /// arrive as the returned stream is polled (gRPC flow control keeps the server from
    /// running ahead). Dropping the stream cancels the transfer.
    pub async fn fetch_stream(&self, ticket: &Ticket) -> Result<ObjectStream> {
        if ticket.is_empty() {
            return Err(Error::InvalidInput("cannot fetch an empty ticket".into()));
        }
        let request = arrow_flight::Ticket {
            ticket: ticket.bytes().clone(),
        };
        let response = self
            .flight()
            .do_get(request)
            .await
            .map_err(|e| Error::from(e).with_peer(&self.uri))?;
        let ObjectStream { schema, batches } = protocol::decode_object(response.into_inner())
            .await
            .map_err(|e| e.with_peer(&self.uri))?;
        let uri = self.uri.clone();
        let batches = batches.map_err(move |e| e.with_peer(&uri)).boxed();
        Ok(ObjectStream { schema, batches })
    }

    /// Pushes a whole object to the server, which stores it under `ticket` (replacing or
    /// refusing an existing one is the server's policy). Returns once it is stored.
    ///
    /// Every batch must have `schema`'s fields ([`Error::InvalidInput`] otherwise).
    pub async fn push(
        &self,
        ticket: Ticket,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        self.push_stream(ticket, ObjectStream::from_batches(schema, batches))
            .await
    }

    /// Pushes an object whose batches are produced as they are sent. If the stream fails
    /// midway, the server stores nothing and this returns the stream's error.
    pub async fn push_stream(&self, ticket: Ticket, object: ObjectStream) -> Result<()> {
        if ticket.is_empty() {
            return Err(Error::InvalidInput("cannot push an empty ticket".into()));
        }
        let encoded = protocol::encode_object(
            object,
            Some(protocol::ticket_descriptor(&ticket)),
            self.config.split_bytes(),
            Error::InvalidInput,
        );
        // A local failure (the producer's error, a mismatched batch) ends the request stream;
        // the server may then answer first with "truncated push". Keep the local error aside
        // so the caller gets the cause, not the symptom.
        let (local_tx, mut local_rx) = oneshot::channel::<FlightError>();
        let mut local_tx = Some(local_tx);
        let encoded = encoded.map_err(move |e| {
            if let Some(tx) = local_tx.take() {
                let _ = tx.send(e);
            }
            FlightError::protocol("push aborted by the sender")
        });
        let push = async {
            let results = self.flight().do_put(protocol::mark_end(encoded)).await?;
            results.try_for_each(|_| async { Ok(()) }).await
        };
        let outcome = push.await;
        if let Ok(Some(local)) = local_rx.try_recv() {
            return Err(Error::from(local));
        }
        outcome.map_err(|e| Error::from(e).with_peer(&self.uri))
    }

    /// Checks that the server is up and answering.
    pub async fn ping(&self) -> Result<()> {
        let ping = async {
            let replies = self
                .flight()
                .do_action(arrow_flight::Action::new(PING_ACTION, ""))
                .await?;
            replies.try_collect::<Vec<_>>().await
        };
        let replies = ping
            .await
            .map_err(|e| Error::from(e).with_peer(&self.uri))?;
        match replies.as_slice() {
            [reply] if reply.as_ref() == PONG => Ok(()),
            other => Err(Error::Protocol(format!(
                "flight server {}: unexpected answer to {PING_ACTION:?}: {other:?}",
                self.uri
            ))),
        }
    }

    /// arrow-flight's client over this client's connection (a clone of a cheap handle).
    fn flight(&self) -> ArrowFlightClient {
        ArrowFlightClient::new_from_inner(self.inner.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use arrow::compute::concat_batches;
    use futures::stream;

    use super::*;
    use crate::test_util::{
        EndlessSource, FailingSource, batch, batch_bytes, ids_batch, schema,
        three_batches_one_large,
    };
    use crate::{MemorySource, ServerHandle, serve, serve_with};

    async fn memory_server() -> (Arc<MemorySource>, ServerHandle, FlightClient) {
        let store = Arc::new(MemorySource::new());
        let server = serve("127.0.0.1:0".parse().expect("addr"), store.clone())
            .await
            .expect("serve");
        let client = FlightClient::connect(server.local_addr())
            .await
            .expect("connect");
        (store, server, client)
    }

    #[tokio::test]
    async fn fetch_returns_a_multi_batch_object_with_a_batch_over_4_mib() {
        let (store, server, client) = memory_server().await;
        let batches = three_batches_one_large();
        let ticket = Ticket::from(vec![0x00, 0x42]);
        store.insert(ticket.clone(), schema(), batches.clone());

        let (schema_back, batches_back) = client.fetch(&ticket).await.expect("fetch");
        assert_eq!(schema_back, schema());
        assert_eq!(batches_back, batches);
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn push_then_fetch_returns_the_same_batches() {
        let (store, server, client) = memory_server().await;
        let batches = three_batches_one_large();
        let ticket = Ticket::from(b"shuffle-3-7".to_vec());

        client
            .push(ticket.clone(), schema(), batches.clone())
            .await
            .expect("push");
        assert!(store.contains(&ticket));
        let (schema_back, batches_back) = client.fetch(&ticket).await.expect("fetch");
        assert_eq!(schema_back, schema());
        assert_eq!(batches_back, batches);
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn an_object_without_batches_round_trips() {
        let (store, server, client) = memory_server().await;
        let ticket = Ticket::from(vec![5]);
        client
            .push(ticket.clone(), schema(), vec![])
            .await
            .expect("push");
        assert!(store.contains(&ticket));
        let (schema_back, batches_back) = client.fetch(&ticket).await.expect("fetch");
        assert_eq!(schema_back, schema());
        assert!(batches_back.is_empty());
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn an_unknown_ticket_is_not_found_naming_it_in_hex() {
        let (_store, server, client) = memory_server().await;
        let ticket = Ticket::from(vec![0xde, 0xad, 0xbe, 0xef]);
        let err = client.fetch(&ticket).await.err();
        assert!(
            matches!(&err, Some(Error::NotFound { ticket: t }) if *t == ticket),
            "{err:?}"
        );
        assert!(err.is_some_and(|e| e.to_string().contains("deadbeef")));
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn ping_answers() {
        let (_store, server, client) = memory_server().await;
        client.ping().await.expect("ping");
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn batches_over_the_message_limit_are_split_but_their_rows_arrive_in_order() {
        let config = FlightConfig {
            max_message_bytes: 1 << 20,
            ..FlightConfig::default()
        };
        let store = Arc::new(MemorySource::new());
        let server = serve_with(
            "127.0.0.1:0".parse().expect("addr"),
            store.clone(),
            config.clone(),
        )
        .await
        .expect("serve");
        let client = FlightClient::connect_with(server.local_addr(), config)
            .await
            .expect("connect");
        let big = batch(0, 40_000, 100);
        assert!(batch_bytes(&big) > 4 << 20);
        let ticket = Ticket::from(vec![1]);

        client
            .push(ticket.clone(), schema(), vec![big.clone()])
            .await
            .expect("push");
        let (schema_back, batches) = client.fetch(&ticket).await.expect("fetch");
        assert!(batches.len() > 4, "split into {} batches", batches.len());
        let joined = concat_batches(&schema_back, &batches).expect("concat");
        assert_eq!(joined, big);
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn fetch_stream_pulls_lazily_and_dropping_it_cancels_the_transfer() {
        let produced = Arc::new(AtomicUsize::new(0));
        let source = Arc::new(EndlessSource {
            produced: Arc::clone(&produced),
            cap: 5_000,
        });
        let server = serve("127.0.0.1:0".parse().expect("addr"), source)
            .await
            .expect("serve");
        let client = FlightClient::connect(server.local_addr())
            .await
            .expect("connect");

        let mut object = client
            .fetch_stream(&Ticket::from(vec![1]))
            .await
            .expect("fetch_stream");
        for _ in 0..3 {
            let batch = object.batches.next().await.expect("a batch").expect("ok");
            assert_eq!(batch.num_rows(), 8192);
        }
        drop(object);
        // Flow control kept the server from encoding the whole (320 MiB) object.
        let seen = produced.load(Ordering::SeqCst);
        assert!(seen < 1_000, "server produced {seen} of 5000 batches");
        // The cancelled call does not hold the server open.
        tokio::time::timeout(Duration::from_secs(20), server.shutdown())
            .await
            .expect("shutdown finished")
            .expect("shutdown");
    }

    #[tokio::test]
    async fn an_error_midway_reaches_the_client_after_the_good_batches() {
        let server = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Arc::new(FailingSource),
        )
        .await
        .expect("serve");
        let client = FlightClient::connect(server.local_addr())
            .await
            .expect("connect");
        let mut object = client
            .fetch_stream(&Ticket::from(vec![1]))
            .await
            .expect("fetch_stream");
        let first = object.batches.next().await.expect("a batch").expect("ok");
        assert_eq!(first, batch(0, 10, 4));
        let err = object.batches.next().await.expect("an item").err();
        assert!(
            matches!(&err, Some(Error::ResourceExhausted(m))
                if m.contains("spill disk full") && m.contains(client.uri())),
            "{err:?}"
        );
        let err = client
            .push(Ticket::from(vec![1]), schema(), vec![])
            .await
            .err();
        assert!(
            matches!(&err, Some(Error::ResourceExhausted(m)) if m.contains("object store full")),
            "{err:?}"
        );
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn a_push_with_a_mismatched_batch_is_refused_and_stores_nothing() {
        let (store, server, client) = memory_server().await;
        let other = ids_batch();
        let err = client
            .push(Ticket::from(vec![1]), schema(), vec![batch(0, 3, 3), other])
            .await
            .err();
        assert!(
            matches!(&err, Some(Error::InvalidInput(m)) if m.contains("does not match")),
            "{err:?}"
        );
        assert!(store.is_empty());
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn a_push_whose_stream_fails_midway_stores_nothing() {
        let (store, server, client) = memory_server().await;
        let batches = stream::iter(vec![
            Ok(batch(0, 100, 10)),
            Ok(batch(100, 100, 10)),
            Err(Error::Internal("producer crashed".into())),
        ])
        .boxed();
        let err = client
            .push_stream(Ticket::from(vec![1]), ObjectStream::new(schema(), batches))
            .await
            .err();
        assert!(
            matches!(&err, Some(Error::Internal(m)) if m.contains("producer crashed")),
            "{err:?}"
        );
        // Whenever the server sees the stream end, the end marker is missing: never stored.
        client.ping().await.expect("server still up");
        assert!(store.is_empty());
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn bad_addresses_are_invalid_input() {
        let err = FlightClient::connect("http://bad host:1").await.err();
        assert!(matches!(err, Some(Error::InvalidInput(_))), "{err:?}");
    }

    #[test]
    fn targets_become_uris() {
        let addr: SocketAddr = "127.0.0.1:8815".parse().expect("addr");
        assert_eq!(addr.to_uri(), "http://127.0.0.1:8815");
        assert_eq!("10.0.0.2:1".to_uri(), "http://10.0.0.2:1");
        assert_eq!("https://node:1".to_uri(), "https://node:1");
        assert_eq!(String::from("node:2").to_uri(), "http://node:2");
    }
}
