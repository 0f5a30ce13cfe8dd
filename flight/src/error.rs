//! The crate's one error type, sorted by who is at fault, and its mapping to and from gRPC.
//!
//! # Invariants
//!
//! * Every error that crosses the wire goes through exactly two functions: `From<Error> for
//!   tonic::Status` on the sending side and [`Error::from_status`] on the receiving side. Both
//!   are exhaustive `match`es, so a new variant (or a new gRPC code) cannot slip through
//!   unmapped. The mapping table is in [`Error`]'s documentation.
//! * [`Error::NotFound`] carries its ticket across the wire in the status *details* (raw
//!   ticket bytes), so the receiver gets the same ticket back, not a parsed message.

use std::error::Error as StdError;

use arrow::error::ArrowError;
use arrow_flight::error::FlightError;
use bytes::Bytes;
use tonic::{Code, Status};

use crate::Ticket;

/// Result type of this crate: `Result<T>` is `std::result::Result<T, volley_flight::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on Volley's data plane, sorted by who is at fault:
/// the caller ([`NotFound`](Error::NotFound), [`InvalidInput`](Error::InvalidInput)),
/// the resources of the serving node ([`ResourceExhausted`](Error::ResourceExhausted)),
/// the network or the peer ([`Transport`](Error::Transport), [`Protocol`](Error::Protocol)),
/// the data ([`Arrow`](Error::Arrow)), and Volley itself ([`Internal`](Error::Internal)).
///
/// On the wire (`From<Error> for tonic::Status` sends, [`Error::from_status`] receives):
///
/// * `NotFound` is sent as `NOT_FOUND` (ticket bytes in the details); received from
///   `NOT_FOUND`.
/// * `InvalidInput` is sent as `INVALID_ARGUMENT`; received from `INVALID_ARGUMENT`,
///   `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `ALREADY_EXISTS`, `UNIMPLEMENTED`,
///   `PERMISSION_DENIED` and `UNAUTHENTICATED`.
/// * `ResourceExhausted` is sent as and received from `RESOURCE_EXHAUSTED`.
/// * `Transport` is sent as `UNAVAILABLE`; received from `UNAVAILABLE`, `CANCELLED`,
///   `DEADLINE_EXCEEDED`, `ABORTED` and `UNKNOWN`.
/// * `Protocol` is sent as `INVALID_ARGUMENT` (the peer sent something malformed), so it
///   arrives as `InvalidInput`.
/// * `Arrow` is sent as `INTERNAL`, so it arrives as `Internal`.
/// * `Internal` is sent as `INTERNAL`; received from `INTERNAL`, `DATA_LOSS` and `OK` (an
///   "error" with status OK is a peer bug).
///
/// Codes folded into a variant keep their name in its message (`"DeadlineExceeded: ..."`).
///
/// ```
/// use volley_flight::{Error, Ticket};
///
/// let err = Error::NotFound { ticket: Ticket::from(vec![0xde, 0xad]) };
/// assert_eq!(err.to_string(), "object dead not found");
/// // What a remote peer receives, and what it turns back into:
/// let status = tonic::Status::from(err);
/// assert_eq!(status.code(), tonic::Code::NotFound);
/// let back = Error::from_status(status);
/// assert!(matches!(back, Error::NotFound { ticket } if ticket.as_bytes() == [0xde, 0xad]));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller asked for an object the serving node does not hold (never stored, released,
    /// or lost with a node). Ray's equivalent is `ObjectLostError`/`OwnerDiedError` territory:
    /// the engine decides whether to reconstruct it.
    #[error("object {ticket} not found")]
    NotFound {
        /// The ticket that was asked for.
        ticket: Ticket,
    },

    /// The caller's request is malformed or unsupported: an empty ticket, a bad address, a
    /// batch whose schema does not match the object's, an unknown action.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The serving node is out of a resource it needs (object store full, message over the
    /// configured size limit). Retrying later or elsewhere may succeed.
    #[error("resources exhausted: {0}")]
    ResourceExhausted(String),

    /// The connection failed: cannot bind or connect, the peer went away, the call was
    /// cancelled or timed out. The message names the peer when it is known.
    #[error("transport error: {0}")]
    Transport(String),

    /// The peer broke the Flight protocol as Volley speaks it: a missing schema, a second
    /// schema, an undecodable message, a push without its end-of-object marker.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// Arrow could not encode or decode the data.
    #[error("arrow error: {0}")]
    Arrow(#[from] ArrowError),

    /// A bug in Volley (here or on the peer): an invariant was broken. Please report it.
    #[error("internal error: {0} (this is a bug in Volley, please report it)")]
    Internal(String),
}

impl Error {
    /// Turns a gRPC status received from a peer back into an [`Error`] — the one place where
    /// gRPC codes are interpreted (see the module table).
    ///
    /// ```
    /// use volley_flight::Error;
    /// let err = Error::from_status(tonic::Status::unavailable("connection reset"));
    /// assert!(matches!(err, Error::Transport(m) if m == "connection reset"));
    /// ```
    pub fn from_status(status: Status) -> Self {
        let code = status.code();
        // Secondary codes keep their name in the message, so nothing is lost in the folding.
        let named = || format!("{code:?}: {}", status.message());
        match code {
            Code::NotFound => Error::NotFound {
                ticket: Ticket::from(Bytes::copy_from_slice(status.details())),
            },
            Code::InvalidArgument => Error::InvalidInput(status.message().to_owned()),
            Code::FailedPrecondition
            | Code::OutOfRange
            | Code::AlreadyExists
            | Code::Unimplemented
            | Code::PermissionDenied
            | Code::Unauthenticated => Error::InvalidInput(named()),
            Code::ResourceExhausted => Error::ResourceExhausted(status.message().to_owned()),
            Code::Unavailable => Error::Transport(status.message().to_owned()),
            Code::Cancelled | Code::DeadlineExceeded | Code::Aborted | Code::Unknown => {
                Error::Transport(named())
            }
            Code::Internal => Error::Internal(status.message().to_owned()),
            Code::DataLoss | Code::Ok => Error::Internal(named()),
        }
    }

    /// Adds the peer's name to errors that came from (or concern) a remote node, so a message
    /// read far from the call site still says which node it was about.
    pub(crate) fn with_peer(self, peer: &str) -> Self {
        match self {
            Error::InvalidInput(m) => Error::InvalidInput(format!("flight server {peer}: {m}")),
            Error::ResourceExhausted(m) => {
                Error::ResourceExhausted(format!("flight server {peer}: {m}"))
            }
            Error::Transport(m) => Error::Transport(format!("flight server {peer}: {m}")),
            Error::Protocol(m) => Error::Protocol(format!("flight server {peer}: {m}")),
            Error::Internal(m) => Error::Internal(format!("flight server {peer}: {m}")),
            e @ (Error::NotFound { .. } | Error::Arrow(_)) => e,
        }
    }

    /// Wraps this error for transport inside an arrow-flight stream; [`From<FlightError>`]
    /// unwraps it again losslessly.
    pub(crate) fn into_flight(self) -> FlightError {
        FlightError::ExternalError(Box::new(self))
    }
}

impl From<Error> for Status {
    /// The sending side of the wire mapping (see the module table).
    fn from(err: Error) -> Self {
        match err {
            Error::NotFound { ticket } => {
                let message = Error::NotFound {
                    ticket: ticket.clone(),
                }
                .to_string();
                Status::with_details(Code::NotFound, message, ticket.into_bytes())
            }
            Error::InvalidInput(m) => Status::invalid_argument(m),
            Error::ResourceExhausted(m) => Status::resource_exhausted(m),
            Error::Transport(m) => Status::unavailable(m),
            Error::Protocol(m) => Status::invalid_argument(format!("protocol error: {m}")),
            Error::Arrow(e) => Status::internal(format!("arrow error: {e}")),
            Error::Internal(m) => Status::internal(m),
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Error::from_status(status)
    }
}

impl From<FlightError> for Error {
    /// Errors raised by the arrow-flight codec and client.
    fn from(err: FlightError) -> Self {
        match err {
            FlightError::Arrow(e) => Error::Arrow(e),
            FlightError::NotYetImplemented(m) => Error::Arrow(ArrowError::NotYetImplemented(m)),
            FlightError::Tonic(status) => Error::from_status(*status),
            FlightError::ProtocolError(m) | FlightError::DecodeError(m) => Error::Protocol(m),
            FlightError::ExternalError(e) => match e.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Internal(error_chain(other.as_ref())),
            },
        }
    }
}

/// Renders an error with its whole `source()` chain (tonic's transport errors say only
/// "transport error" at the top; the cause is further down).
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(err: Error) -> Error {
        Error::from_status(Status::from(err))
    }

    #[test]
    fn not_found_keeps_its_ticket_across_the_wire() {
        let ticket = Ticket::from(vec![0x01, 0xab, 0xff]);
        let back = round_trip(Error::NotFound {
            ticket: ticket.clone(),
        });
        assert!(matches!(&back, Error::NotFound { ticket: t } if *t == ticket));
        assert_eq!(back.to_string(), "object 01abff not found");
    }

    #[test]
    fn caller_resource_transport_and_internal_errors_round_trip() {
        assert!(matches!(round_trip(Error::InvalidInput("bad".into())),
                Error::InvalidInput(m) if m == "bad"));
        assert!(matches!(
            round_trip(Error::ResourceExhausted("store full".into())),
            Error::ResourceExhausted(m) if m == "store full"
        ));
        assert!(matches!(round_trip(Error::Transport("reset".into())),
                Error::Transport(m) if m == "reset"));
        assert!(
            matches!(round_trip(Error::Internal("oops".into())), Error::Internal(m) if m == "oops")
        );
    }

    #[test]
    fn peer_side_errors_fold_to_the_receivers_view() {
        assert!(matches!(
            round_trip(Error::Protocol("two schemas".into())),
            Error::InvalidInput(m) if m.contains("two schemas")
        ));
        assert!(matches!(
            round_trip(Error::Arrow(ArrowError::ComputeError("x".into()))),
            Error::Internal(m) if m.contains("arrow error")
        ));
    }

    #[test]
    fn secondary_codes_keep_their_name() {
        let err = Error::from_status(Status::deadline_exceeded("slow"));
        assert!(matches!(err, Error::Transport(m) if m == "DeadlineExceeded: slow"));
        let err = Error::from_status(Status::unimplemented("no handshake"));
        assert!(matches!(err, Error::InvalidInput(m) if m == "Unimplemented: no handshake"));
    }

    #[test]
    fn our_errors_survive_a_trip_through_flight_error() {
        let err = Error::from(Error::ResourceExhausted("full".into()).into_flight());
        assert!(matches!(err, Error::ResourceExhausted(m) if m == "full"));
        let err = Error::from(FlightError::protocol("no schema"));
        assert!(matches!(err, Error::Protocol(m) if m == "no schema"));
    }

    #[test]
    fn peer_context_is_added_to_messages() {
        let err = Error::Transport("reset".into()).with_peer("http://10.0.0.2:8815");
        assert_eq!(
            err.to_string(),
            "transport error: flight server http://10.0.0.2:8815: reset"
        );
    }
}
