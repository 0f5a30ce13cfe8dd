//! [`Ticket`]: the opaque name of an object on the wire.

use std::fmt;

use bytes::Bytes;

/// The name of an object on the data plane: opaque bytes chosen by the engine (an object id).
///
/// This crate never interprets a ticket; it only carries it. It prints as lowercase hex, which
/// is how it appears in error messages and logs.
///
/// ```
/// use volley_flight::Ticket;
///
/// let ticket = Ticket::from(vec![0x0a, 0xff]);
/// assert_eq!(ticket.to_string(), "0aff");
/// assert_eq!(ticket.as_bytes(), &[0x0a, 0xff]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ticket(Bytes);

impl Ticket {
    /// A ticket made of `bytes`.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Ticket(bytes.into())
    }

    /// The ticket's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The ticket's bytes as a cheaply clonable [`Bytes`].
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Consumes the ticket, returning its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Number of bytes in the ticket.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the ticket has no bytes (never a valid object name on the wire).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Ticket {
    /// Lowercase hex, two digits per byte.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.iter() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticket({self})")
    }
}

impl From<Bytes> for Ticket {
    fn from(bytes: Bytes) -> Self {
        Ticket(bytes)
    }
}

impl From<Vec<u8>> for Ticket {
    fn from(bytes: Vec<u8>) -> Self {
        Ticket(Bytes::from(bytes))
    }
}

impl From<&[u8]> for Ticket {
    fn from(bytes: &[u8]) -> Self {
        Ticket(Bytes::copy_from_slice(bytes))
    }
}

impl From<Ticket> for Bytes {
    fn from(ticket: Ticket) -> Self {
        ticket.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_lowercase_hex() {
        let ticket = Ticket::from(vec![0x00, 0x01, 0xab, 0xcd, 0xef]);
        assert_eq!(ticket.to_string(), "0001abcdef");
        assert_eq!(format!("{ticket:?}"), "Ticket(0001abcdef)");
        assert_eq!(Ticket::default().to_string(), "");
    }

    #[test]
    fn conversions_keep_the_bytes() {
        let ticket = Ticket::from(&b"obj-1"[..]);
        assert_eq!(ticket.as_bytes(), b"obj-1");
        assert_eq!(ticket.len(), 5);
        assert!(!ticket.is_empty());
        assert_eq!(Bytes::from(ticket.clone()), Bytes::from_static(b"obj-1"));
        assert_eq!(Ticket::new(Bytes::from_static(b"obj-1")), ticket);
    }
}
