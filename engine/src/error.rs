//! The engine's one error enum, sorted by who is at fault.
//!
//! | blame | variants |
//! | --- | --- |
//! | the caller's input | [`Error::InvalidArgument`], [`Error::InvalidData`], [`Error::NotFound`], [`Error::NotInitialized`] |
//! | the user's code | [`Error::TaskFailed`] with [`FailureCause::UserError`] or [`FailureCause::Panic`] |
//! | execution | [`Error::GetTimeout`], [`Error::TaskCancelled`], [`Error::ActorDied`], [`Error::ObjectLost`], [`Error::ObjectElsewhere`], [`Error::Io`], [`Error::Shutdown`] |
//! | resources exhausted | [`Error::ObjectStoreFull`], [`Error::Infeasible`] |
//! | a bug in Volley | [`Error::Internal`] |
//!
//! Errors are `Clone`: one failed task's error is stored once and handed to every reader of
//! its outputs.

use std::fmt;
use std::time::Duration;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who is at fault for an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The caller passed something wrong (an argument, a name, a type).
    Input,
    /// The user's own code failed (a task returned an error or panicked).
    UserCode,
    /// Something went wrong while running (time-out, cancellation, I/O, a dead actor).
    Execution,
    /// A configured limit was reached (store budget, cluster resources).
    ResourcesExhausted,
    /// A bug in Volley.
    Internal,
}

/// Why a task failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FailureCause {
    /// The task returned `Err` (an application error; retried only with `retry_exceptions`).
    UserError,
    /// The task panicked (treated like a crashed worker: a system failure, retried up to
    /// `max_retries`).
    Panic,
    /// The worker process running it died (a system failure, retried up to `max_retries`).
    WorkerDied,
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureCause::UserError => "returned an error",
            FailureCause::Panic => "panicked",
            FailureCause::WorkerDied => "lost its worker process",
        })
    }
}

/// Every error the engine returns.
///
/// Errors are serializable so that a worker process receives the same error its node saw.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    // ---- the caller's input ----
    /// An argument is wrong: a bad option value, a type that does not match, a bad URL.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A named thing (actor, function, placement group) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Input data is bad: a corrupt or truncated file, schemas that conflict. `location` names
    /// the file (or operator) and `message` the cause.
    #[error("bad data in {location}: {message}")]
    InvalidData {
        /// The file or operator.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The API was used before `volley::init` (or after `volley::shutdown`).
    #[error("volley is not initialized: call volley::init first")]
    NotInitialized,

    // ---- the user's code ----
    /// A task or actor method failed. `task` names it (`name (id)`); `message` carries the
    /// error or panic message; `attempts` counts the executions made.
    #[error("task {task} {cause} after {attempts} attempt(s): {message}")]
    TaskFailed {
        /// The task's name and id.
        task: String,
        /// User error or panic.
        cause: FailureCause,
        /// The user's error message or panic payload (with its location when known).
        message: String,
        /// How many times the task ran.
        attempts: u32,
        /// The user's error object as its front end serialized it (a pickled Python
        /// exception), so the caller can raise the same error; `None` for Rust errors.
        payload: Option<ErrorPayload>,
    },

    // ---- execution ----
    /// `get` or `wait` ran out of time.
    #[error("timed out after {0:?} waiting for {1}")]
    GetTimeout(Duration, String),
    /// The task was cancelled with `volley::cancel`.
    #[error("task {0} was cancelled")]
    TaskCancelled(String),
    /// The actor is dead (killed, out of restarts, or its constructor failed).
    #[error("actor {actor} died: {reason}")]
    ActorDied {
        /// The actor's name and id.
        actor: String,
        /// Why it died.
        reason: String,
    },
    /// The object cannot be found or restored.
    #[error("object {object} lost: {reason}")]
    ObjectLost {
        /// The object's id.
        object: String,
        /// Why.
        reason: String,
    },
    /// The object is owned by another node, which this one cannot reach: it is not lost,
    /// only not here.
    #[error("object {object} is held by node {node}, not this one")]
    ObjectElsewhere {
        /// The object's id.
        object: String,
        /// The node that owns it.
        node: String,
    },
    /// An I/O operation failed (spill file, shared-memory segment, session directory).
    #[error("I/O error while {context}: {message}")]
    Io {
        /// What was being done, naming the file or URL.
        context: String,
        /// The underlying error.
        message: String,
    },
    /// The runtime is shutting down.
    #[error("volley is shutting down")]
    Shutdown,

    // ---- resources exhausted ----
    /// The object store cannot make room: everything resident is pinned.
    #[error(
        "object store full: {needed} bytes needed, {resident} of {budget} bytes resident \
         ({pinned} pinned); release object refs or raise object_store_memory"
    )]
    ObjectStoreFull {
        /// Bytes requested.
        needed: u64,
        /// Bytes resident now.
        resident: u64,
        /// The store's byte budget.
        budget: u64,
        /// Bytes held by pinned objects.
        pinned: u64,
    },
    /// A demand can never be met by the cluster (more CPUs than exist, an unknown node...).
    #[error("infeasible: {0}")]
    Infeasible(String),

    // ---- a bug ----
    /// A bug in Volley — please report it.
    #[error("internal error (a bug in Volley, please report it): {0}")]
    Internal(String),
}

impl Error {
    /// Who is at fault.
    pub fn blame(&self) -> Blame {
        match self {
            Error::InvalidArgument(_)
            | Error::InvalidData { .. }
            | Error::NotFound(_)
            | Error::NotInitialized => Blame::Input,
            Error::TaskFailed { .. } => Blame::UserCode,
            Error::GetTimeout(..)
            | Error::TaskCancelled(_)
            | Error::ActorDied { .. }
            | Error::ObjectLost { .. }
            | Error::ObjectElsewhere { .. }
            | Error::Io { .. }
            | Error::Shutdown => Blame::Execution,
            Error::ObjectStoreFull { .. } | Error::Infeasible(_) => Blame::ResourcesExhausted,
            Error::Internal(_) => Blame::Internal,
        }
    }

    /// An I/O error with the context it happened in.
    pub(crate) fn io(context: impl Into<String>, err: impl fmt::Display) -> Self {
        Error::Io {
            context: context.into(),
            message: err.to_string(),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Internal(format!("arrow: {e}"))
    }
}

/// A front end's serialized error object (opaque to the engine).
pub type ErrorPayload = std::sync::Arc<Vec<u8>>;

/// An error raised by user code inside a task or actor method.
///
/// Any `std::error::Error` converts into it with `?`, so task bodies can use `?` freely;
/// [`UserError::msg`] makes one from a message.
#[derive(Debug, Clone)]
pub struct UserError {
    message: String,
    payload: Option<ErrorPayload>,
    worker_died: bool,
    /// An engine error that already names its task or operator: the task fails with it
    /// unchanged rather than wrapping it.
    engine: Option<Box<Error>>,
}

impl UserError {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        UserError {
            message: message.to_string(),
            payload: None,
            worker_died: false,
            engine: None,
        }
    }

    /// An error carrying the user's error object as its front end serialized it.
    pub fn with_payload(message: impl fmt::Display, payload: ErrorPayload) -> Self {
        UserError {
            payload: Some(payload),
            ..UserError::msg(message)
        }
    }

    /// Not the user's error: the worker process running the user's code died. Tasks retry
    /// it like a panic (up to `max_retries`); actors restart (up to `max_restarts`).
    pub fn worker_died(message: impl fmt::Display) -> Self {
        UserError {
            worker_died: true,
            ..UserError::msg(message)
        }
    }

    /// An engine error raised inside a task body (e.g. by a data operator it runs), passed
    /// through: the task fails with this very error, its type and payload kept.
    pub fn from_engine(e: Error) -> Self {
        UserError {
            message: e.to_string(),
            payload: None,
            worker_died: false,
            engine: Some(Box::new(e)),
        }
    }

    /// The engine error passed through, if any.
    pub fn engine_error(&self) -> Option<&Error> {
        self.engine.as_deref()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The serialized error object, if any.
    pub fn payload(&self) -> Option<&ErrorPayload> {
        self.payload.as_ref()
    }

    /// Whether the worker process died (a system failure).
    pub fn is_worker_died(&self) -> bool {
        self.worker_died
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for UserError {
    fn from(e: E) -> Self {
        // Keep the whole chain of causes: the user wants to see them.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        UserError::msg(message)
    }
}

/// What a task body returns.
pub type TaskResult<T> = std::result::Result<T, UserError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_sorts_variants() {
        assert_eq!(Error::NotInitialized.blame(), Blame::Input);
        assert_eq!(
            Error::Infeasible("x".into()).blame(),
            Blame::ResourcesExhausted
        );
        assert_eq!(Error::Internal("x".into()).blame(), Blame::Internal);
    }

    #[test]
    fn user_error_keeps_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file: a.parquet");
        let e: UserError = io.into();
        assert!(e.message().contains("a.parquet"));
    }
}
