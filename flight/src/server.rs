//! The serving side: [`FlightServer`] (the gRPC service), [`serve`] (bind and run it), and
//! [`ServerHandle`] (its owner).
//!
//! # Ownership
//!
//! [`serve`] spawns exactly one task, the accept loop, and gives its `JoinHandle` to the
//! returned [`ServerHandle`]. The handle is that task's only owner:
//! [`ServerHandle::shutdown`] signals it and awaits it; dropping the handle (or the
//! `shutdown` future) signals and aborts it. Per-connection tasks are spawned by tonic; on a
//! graceful shutdown the accept loop waits for all of them to finish.

use std::fmt;
use std::future::ready;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult,
};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::error::error_chain;
use crate::protocol::{self, PING_ACTION, PONG};
use crate::{Error, FlightConfig, ObjectSource, Result, Ticket};

/// Volley's Arrow Flight service: `do_get` streams objects out of an [`ObjectSource`],
/// `do_put` stores pushed objects into it, `do_action("ping")` answers `pong`. The other
/// Flight methods answer `UNIMPLEMENTED`.
///
/// Most callers want [`serve`]; use [`FlightServer::into_service`] to mount the service on a
/// tonic router of your own.
pub struct FlightServer {
    source: Arc<dyn ObjectSource>,
    config: FlightConfig,
}

impl FlightServer {
    /// A service serving `source`.
    pub fn new(source: Arc<dyn ObjectSource>, config: FlightConfig) -> Self {
        FlightServer { source, config }
    }

    /// The tonic service, with message size limits set from the config.
    pub fn into_service(self) -> FlightServiceServer<Self> {
        let limit = self.config.max_message_bytes;
        FlightServiceServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

impl fmt::Debug for FlightServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlightServer")
            .field("source", &"<dyn ObjectSource>")
            .field("config", &self.config)
            .finish()
    }
}

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!(
        "volley-flight does not implement {method}; it serves objects by ticket through \
         do_get and do_put, and the action \"{PING_ACTION}\""
    ))
}

#[tonic::async_trait]
impl FlightService for FlightServer {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;

    async fn do_get(
        &self,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = Ticket::from(request.into_inner().ticket);
        if ticket.is_empty() {
            return Err(Error::InvalidInput("do_get: empty ticket".into()).into());
        }
        let object = self.source.get(&ticket)?;
        // A mismatching batch here is the source's bug, not the caller's.
        let messages =
            protocol::encode_object(object, None, self.config.split_bytes(), Error::Internal)
                .map_err(|e| Status::from(Error::from(e)));
        Ok(Response::new(messages.boxed()))
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let messages = request.into_inner().map_err(FlightError::from);
        let (ticket, schema, batches) = protocol::receive_put(messages).await?;
        self.source.put(ticket, schema, batches)?;
        let done = stream::once(ready(Ok(PutResult::default())));
        Ok(Response::new(done.boxed()))
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let action = request.into_inner();
        if action.r#type != PING_ACTION {
            return Err(Error::InvalidInput(format!(
                "unknown action {:?}; supported actions: {PING_ACTION:?}",
                action.r#type
            ))
            .into());
        }
        let pong = stream::once(ready(Ok(arrow_flight::Result::new(PONG))));
        Ok(Response::new(pong.boxed()))
    }

    async fn list_actions(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let ping = ActionType {
            r#type: PING_ACTION.to_owned(),
            description: "Health check: answers one result whose body is \"pong\".".to_owned(),
        };
        Ok(Response::new(stream::once(ready(Ok(ping))).boxed()))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(unimplemented("handshake"))
    }

    async fn list_flights(
        &self,
        _request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(unimplemented("list_flights"))
    }

    async fn get_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unimplemented("get_flight_info"))
    }

    async fn poll_flight_info(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(unimplemented("poll_flight_info"))
    }

    async fn get_schema(
        &self,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Err(unimplemented("get_schema"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unimplemented("do_exchange"))
    }
}

/// Binds `addr` (port 0 picks a free port) and serves `source` on it with the default
/// [`FlightConfig`], until the returned handle is shut down or dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> volley_flight::Result<()> {
/// use std::sync::Arc;
/// use volley_flight::{serve, MemorySource};
///
/// let server = serve("127.0.0.1:0".parse().unwrap(), Arc::new(MemorySource::new())).await?;
/// assert_ne!(server.local_addr().port(), 0);
/// server.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve(addr: SocketAddr, source: Arc<dyn ObjectSource>) -> Result<ServerHandle> {
    serve_with(addr, source, FlightConfig::default()).await
}

/// [`serve`] with an explicit [`FlightConfig`].
pub async fn serve_with(
    addr: SocketAddr,
    source: Arc<dyn ObjectSource>,
    config: FlightConfig,
) -> Result<ServerHandle> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Transport(format!("cannot bind the flight server to {addr}: {e}")))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::Transport(format!("cannot read the flight server's address: {e}")))?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let router = Server::builder()
        .http2_adaptive_window(Some(true))
        .add_service(FlightServer::new(source, config).into_service());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // A dropped sender is a stop signal too.
        let stop = async {
            let _ = stop_rx.await;
        };
        router.serve_with_incoming_shutdown(incoming, stop).await
    });
    Ok(ServerHandle {
        local_addr,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// Owner of a running server (see the module doc): its address, and the way to stop it.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl ServerHandle {
    /// The address the server is bound to (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets calls in progress finish, and waits until every
    /// connection is closed. A client that holds a stream open keeps this waiting; to bound
    /// the wait, wrap it in `tokio::time::timeout` — dropping the future aborts the server.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        // The handle stays in `self` while awaited: if this future is dropped, `Drop` aborts.
        let outcome = task.await;
        self.task = None;
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Transport(format!(
                "flight server {} failed: {}",
                self.local_addr,
                error_chain(&e)
            ))),
            Err(e) => Err(Error::Internal(format!(
                "flight server {} task failed: {e}",
                self.local_addr
            ))),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use arrow_flight::flight_service_client::FlightServiceClient;
    use futures::TryStreamExt;
    use tonic::Code;

    use super::*;
    use crate::{FlightClient, MemorySource};

    async fn memory_server() -> ServerHandle {
        serve(
            "127.0.0.1:0".parse().expect("addr"),
            Arc::new(MemorySource::new()),
        )
        .await
        .expect("serve")
    }

    #[tokio::test]
    async fn shutdown_completes_and_later_connects_fail_with_transport() {
        let server = memory_server().await;
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        // A connected, idle client must not keep a graceful shutdown waiting.
        let client = FlightClient::connect(addr).await.expect("connect");
        client.ping().await.expect("ping");

        tokio::time::timeout(Duration::from_secs(20), server.shutdown())
            .await
            .expect("shutdown finished")
            .expect("shutdown");

        let err = FlightClient::connect(addr).await.err();
        assert!(
            matches!(&err, Some(Error::Transport(m)) if m.contains(&addr.to_string())),
            "{err:?}"
        );
        let err = client.ping().await.err();
        assert!(matches!(err, Some(Error::Transport(_))), "{err:?}");
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_server() {
        let server = memory_server().await;
        let addr = server.local_addr();
        drop(server);
        // The abort is processed at the runtime's next turn; the listener closes with the task.
        let mut refused = false;
        for _ in 0..100 {
            if let Err(Error::Transport(_)) = FlightClient::connect(addr).await {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            refused,
            "the server kept accepting connections after its handle was dropped"
        );
    }

    #[tokio::test]
    async fn binding_a_taken_port_is_a_transport_error() {
        let server = memory_server().await;
        let err = serve(server.local_addr(), Arc::new(MemorySource::new()))
            .await
            .err();
        assert!(
            matches!(&err, Some(Error::Transport(m)) if m.contains("cannot bind")),
            "{err:?}"
        );
        server.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn other_flight_methods_are_unimplemented_and_actions_are_listed() {
        let server = memory_server().await;
        let uri = format!("http://{}", server.local_addr());
        let channel = tonic::transport::Endpoint::from_shared(uri)
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut raw = FlightServiceClient::new(channel);

        let status = raw
            .get_flight_info(FlightDescriptor::new_cmd("x"))
            .await
            .err();
        assert!(
            matches!(&status, Some(s)
                if s.code() == Code::Unimplemented && s.message().contains("get_flight_info")),
            "{status:?}"
        );

        let actions: Vec<ActionType> = raw
            .list_actions(Empty {})
            .await
            .expect("list_actions")
            .into_inner()
            .try_collect()
            .await
            .expect("collect");
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].r#type, PING_ACTION);

        let status = raw.do_action(Action::new("reboot", "")).await.err();
        assert!(
            matches!(&status, Some(s)
                if s.code() == Code::InvalidArgument && s.message().contains("reboot")),
            "{status:?}"
        );

        let status = raw
            .do_get(arrow_flight::Ticket {
                ticket: Default::default(),
            })
            .await
            .err();
        assert!(
            matches!(&status, Some(s) if s.code() == Code::InvalidArgument),
            "{status:?}"
        );
        drop(raw);
        server.shutdown().await.expect("shutdown");
    }
}
