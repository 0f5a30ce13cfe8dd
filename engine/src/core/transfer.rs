//! The node's objects over Arrow Flight: the data plane the cluster moves objects on.
//!
//! [`serve_objects`] starts a `volley-flight` server whose tickets are [`ObjectId`] bytes:
//! `do_get` streams an object from the store (restoring it from its spill file if needed,
//! keeping it pinned while it streams); `do_put` stores a pushed object, which the server
//! holds until [`ObjectServer::take_pushed`] hands it over. [`fetch`] pulls an object from
//! another node's server.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use volley_flight::{FlightClient, ObjectSource, ObjectStream, ServerHandle, Ticket};

use crate::core::api::{ObjectRef, RawRef};
use crate::core::ids::ObjectId;
use crate::core::node::{NodeInner, current};
use crate::core::object::{Value, from_batches, to_batches};
use crate::error::{Error, Result};

/// A running object server; stops on [`ObjectServer::shutdown`] or drop.
pub struct ObjectServer {
    handle: Option<ServerHandle>,
    rt: tokio::runtime::Handle,
    pushed: Arc<Mutex<Vec<RawRef>>>,
}

impl std::fmt::Debug for ObjectServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectServer")
            .field("addr", &self.local_addr())
            .finish()
    }
}

impl ObjectServer {
    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.handle.as_ref().map(|h| h.local_addr())
    }

    /// Takes ownership of an object pushed to this server.
    pub fn take_pushed<T>(&self, id: ObjectId) -> Option<ObjectRef<T>> {
        let mut pushed = self.pushed.lock();
        let i = pushed.iter().position(|r| r.id() == id)?;
        Some(ObjectRef::from_raw(pushed.swap_remove(i)))
    }

    /// Stops the server: open streams get up to 5 s to finish, then connections are cut.
    pub fn shutdown(mut self) -> Result<()> {
        let Some(h) = self.handle.take() else {
            return Ok(());
        };
        let graceful = self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(5), h.shutdown()).await
        });
        // On time-out the handle was dropped with the future, which aborts the server.
        graceful.unwrap_or(Ok(())).map_err(flight_error)
    }
}

struct StoreSource {
    node: Weak<NodeInner>,
    pushed: Arc<Mutex<Vec<RawRef>>>,
}

fn object_id(ticket: &Ticket) -> volley_flight::Result<ObjectId> {
    ObjectId::from_bytes(ticket.as_bytes()).ok_or_else(|| {
        volley_flight::Error::InvalidInput(format!("ticket {ticket} is not an object id"))
    })
}

fn to_flight(ticket: &Ticket, e: Error) -> volley_flight::Error {
    match e {
        Error::ObjectLost { .. } => volley_flight::Error::NotFound {
            ticket: ticket.clone(),
        },
        Error::InvalidArgument(m) => volley_flight::Error::InvalidInput(m),
        Error::ObjectStoreFull { .. } => volley_flight::Error::ResourceExhausted(e.to_string()),
        other => volley_flight::Error::Internal(other.to_string()),
    }
}

fn flight_error(e: volley_flight::Error) -> Error {
    match e {
        volley_flight::Error::NotFound { ticket } => Error::ObjectLost {
            object: ObjectId::from_bytes(ticket.as_bytes())
                .map_or(ticket.to_string(), |id| id.to_string()),
            reason: "the serving node does not have it".into(),
        },
        volley_flight::Error::InvalidInput(m) => Error::InvalidArgument(m),
        other => Error::io("moving an object over Flight", other),
    }
}

impl ObjectSource for StoreSource {
    fn get(&self, ticket: &Ticket) -> volley_flight::Result<ObjectStream> {
        let id = object_id(ticket)?;
        let node = self
            .node
            .upgrade()
            .ok_or_else(|| to_flight(ticket, Error::Shutdown))?;
        match node.store.status(id) {
            None => {
                return Err(volley_flight::Error::InvalidInput(format!(
                    "object {id} is not ready yet"
                )));
            }
            Some(Err(e @ Error::ObjectLost { .. })) => return Err(to_flight(ticket, e)),
            Some(Err(e)) => return Err(volley_flight::Error::Internal(e.to_string())),
            Some(Ok(())) => {}
        }
        // Restoring from a spill file is blocking I/O.
        let (data, pin) = tokio::task::block_in_place(|| node.store.get_data(id, true))
            .map_err(|e| to_flight(ticket, e))?;
        let (schema, batches) = to_batches(&data).map_err(|e| to_flight(ticket, e))?;
        // The pin travels with the stream: the object stays resident until it is sent.
        let stream = futures::stream::iter(batches).map(move |b| {
            let _keep = &pin;
            Ok(b)
        });
        Ok(ObjectStream::new(schema, stream.boxed()))
    }

    fn put(
        &self,
        ticket: Ticket,
        schema: arrow::datatypes::SchemaRef,
        batches: Vec<arrow::array::RecordBatch>,
    ) -> volley_flight::Result<()> {
        let id = object_id(&ticket)?;
        let node = self
            .node
            .upgrade()
            .ok_or_else(|| to_flight(&ticket, Error::Shutdown))?;
        let data = from_batches(schema, batches).map_err(|e| to_flight(&ticket, e))?;
        if node.store.status(id).is_some_and(|s| s.is_ok()) {
            return Err(volley_flight::Error::InvalidInput(format!(
                "object {id} already exists here"
            )));
        }
        tokio::task::block_in_place(|| node.store.put(id, data, Vec::new(), 1))
            .map_err(|e| to_flight(&ticket, e))?;
        self.pushed.lock().push(RawRef::adopt(&node, id));
        Ok(())
    }
}

/// Serves this node's objects over Flight on `addr` (port 0 picks a free port).
pub fn serve_objects(addr: SocketAddr) -> Result<ObjectServer> {
    let node = current()?;
    let rt = node.io_runtime()?;
    let pushed = Arc::new(Mutex::new(Vec::new()));
    let source = Arc::new(StoreSource {
        node: Arc::downgrade(&node),
        pushed: pushed.clone(),
    });
    let handle = rt
        .block_on(volley_flight::serve(addr, source))
        .map_err(flight_error)?;
    Ok(ObjectServer {
        handle: Some(handle),
        rt,
        pushed,
    })
}

/// Fetches the object `id` from the node serving at `addr` and returns its value.
pub fn fetch<T: Value>(addr: SocketAddr, id: ObjectId) -> Result<T> {
    let rt = current()?.io_runtime()?;
    let ticket = Ticket::from(id.to_bytes().to_vec());
    let (schema, batches) = rt
        .block_on(async {
            let client = FlightClient::connect(addr).await?;
            client.fetch(&ticket).await
        })
        .map_err(flight_error)?;
    T::from_data(&from_batches(schema, batches)?)
}
