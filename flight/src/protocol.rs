//! The wire format as Volley speaks it, shared by client and server; described in the crate
//! root's "Wire protocol" section, which this module implements.

use std::future::ready;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::FlightData;
use arrow_flight::FlightDescriptor;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::{FlightDataEncoder, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_descriptor::DescriptorType;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};

use crate::source::check_batch_schema;
use crate::{Error, ObjectStream, Result, Ticket};

/// Type of the health-check action.
pub(crate) const PING_ACTION: &str = "ping";
/// Body of the answer to [`PING_ACTION`].
pub(crate) const PONG: &[u8] = b"pong";
/// `app_metadata` of the last message of a complete push.
pub(crate) const END_OF_OBJECT: &[u8] = b"volley-flight/end-of-object";

/// Encodes an object as Flight messages: schema first, then its batches as they are pulled.
/// Each batch is checked against the schema; `blame` says whose fault a mismatch is.
pub(crate) fn encode_object(
    object: ObjectStream,
    descriptor: Option<FlightDescriptor>,
    split_bytes: usize,
    blame: fn(String) -> Error,
) -> FlightDataEncoder {
    let ObjectStream { schema, batches } = object;
    let expected = SchemaRef::clone(&schema);
    let batches = batches.map(move |batch| {
        batch
            .and_then(|batch| check_batch_schema(&expected, &batch, blame).map(|()| batch))
            .map_err(Error::into_flight)
    });
    FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_flight_descriptor(descriptor)
        .with_max_flight_data_size(split_bytes)
        .build(batches)
}

/// Holds each message back by one so that the last one can be stamped with [`END_OF_OBJECT`].
/// After an error nothing more is sent, so a failed push never carries the marker.
pub(crate) fn mark_end<S>(messages: S) -> impl Stream<Item = Result<FlightData, FlightError>>
where
    S: Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
{
    let state = (messages.boxed(), None::<FlightData>, false);
    stream::unfold(state, |(mut messages, mut held, failed)| async move {
        if failed {
            return None;
        }
        loop {
            match messages.next().await {
                Some(Ok(message)) => {
                    if let Some(previous) = held.replace(message) {
                        return Some((Ok(previous), (messages, held, false)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), (messages, None, true))),
                None => {
                    let mut last = held.take()?;
                    last.app_metadata = Bytes::from_static(END_OF_OBJECT);
                    return Some((Ok(last), (messages, None, true)));
                }
            }
        }
    })
}

/// The descriptor a push names its object with.
pub(crate) fn ticket_descriptor(ticket: &Ticket) -> FlightDescriptor {
    FlightDescriptor::new_cmd(ticket.bytes().clone())
}

/// The ticket named by a push's descriptor (see "Wire protocol" in the crate root).
pub(crate) fn ticket_from_descriptor(descriptor: Option<&FlightDescriptor>) -> Result<Ticket> {
    let descriptor = descriptor.ok_or_else(|| {
        Error::InvalidInput(
            "do_put: the first message has no FlightDescriptor; expected a CMD descriptor \
             holding the ticket"
                .into(),
        )
    })?;
    let ticket = match DescriptorType::try_from(descriptor.r#type) {
        Ok(DescriptorType::Cmd) => Ticket::from(descriptor.cmd.clone()),
        Ok(DescriptorType::Path) => match descriptor.path.as_slice() {
            [only] => Ticket::from(only.as_bytes()),
            _ => return Err(descriptor_error(descriptor)),
        },
        _ => return Err(descriptor_error(descriptor)),
    };
    if ticket.is_empty() {
        return Err(Error::InvalidInput("do_put: empty ticket".into()));
    }
    Ok(ticket)
}

fn descriptor_error(descriptor: &FlightDescriptor) -> Error {
    Error::InvalidInput(format!(
        "do_put: expected a CMD descriptor holding the ticket, got type {} with {} path \
         element(s)",
        descriptor.r#type,
        descriptor.path.len()
    ))
}

/// Reads an object's schema off a do_get response, then hands the rest over as a lazy stream
/// of batches.
pub(crate) async fn decode_object(mut decoder: FlightDataDecoder) -> Result<ObjectStream> {
    let schema = loop {
        let Some(message) = decoder.next().await else {
            return Err(Error::Protocol(
                "the stream ended before the object's schema".into(),
            ));
        };
        match message?.payload {
            DecodedPayload::Schema(schema) => break schema,
            DecodedPayload::None => continue,
            DecodedPayload::RecordBatch(_) => {
                return Err(Error::Protocol(
                    "a record batch came before the object's schema".into(),
                ));
            }
        }
    };
    let batches: BoxStream<'static, Result<RecordBatch>> = decoder
        .map_err(Error::from)
        .try_filter_map(|message| {
            ready(match message.payload {
                DecodedPayload::RecordBatch(batch) => Ok(Some(batch)),
                DecodedPayload::None => Ok(None),
                DecodedPayload::Schema(_) => Err(Error::Protocol(
                    "a second schema came in the middle of the object".into(),
                )),
            })
        })
        .boxed();
    Ok(ObjectStream { schema, batches })
}

/// Receives a whole push: its ticket, schema and batches, checking that it is complete.
pub(crate) async fn receive_put<S>(messages: S) -> Result<(Ticket, SchemaRef, Vec<RecordBatch>)>
where
    S: Stream<Item = Result<FlightData, FlightError>> + Send + 'static,
{
    let mut messages = messages.boxed();
    let first = messages
        .next()
        .await
        .ok_or_else(|| Error::InvalidInput("do_put: empty stream".into()))??;
    let ticket = ticket_from_descriptor(first.flight_descriptor.as_ref())?;
    let mut decoder = FlightDataDecoder::new(stream::once(ready(Ok(first))).chain(messages));
    let mut schema = None;
    let mut batches = Vec::new();
    let mut complete = false;
    while let Some(message) = decoder.next().await {
        let message = message?;
        if complete {
            return Err(Error::Protocol(format!(
                "push of object {ticket}: a message came after the end-of-object marker"
            )));
        }
        complete = message.inner.app_metadata.as_ref() == END_OF_OBJECT;
        match message.payload {
            DecodedPayload::Schema(s) if schema.is_none() => schema = Some(s),
            DecodedPayload::Schema(_) => {
                return Err(Error::Protocol(format!(
                    "push of object {ticket}: a second schema came in the middle of the object"
                )));
            }
            DecodedPayload::RecordBatch(batch) => batches.push(batch),
            DecodedPayload::None => {}
        }
    }
    if !complete {
        return Err(Error::Protocol(format!(
            "push of object {ticket} ended without its end-of-object marker (the sender \
             stopped early); nothing was stored"
        )));
    }
    let schema = schema
        .ok_or_else(|| Error::Protocol(format!("push of object {ticket} carried no schema")))?;
    Ok((ticket, schema, batches))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn object(n_batches: i64) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batches = (0..n_batches)
            .map(|i| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(Int64Array::from(vec![i, i + 1]))],
                )
                .expect("valid batch")
            })
            .collect();
        (schema, batches)
    }

    fn push_messages(
        ticket: &Ticket,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> impl Stream<Item = Result<FlightData, FlightError>> + Send + 'static {
        mark_end(encode_object(
            ObjectStream::from_batches(schema, batches),
            Some(ticket_descriptor(ticket)),
            1 << 20,
            Error::InvalidInput,
        ))
    }

    #[tokio::test]
    async fn a_complete_push_is_received_whole() {
        let (schema, batches) = object(3);
        let ticket = Ticket::from(vec![9, 9]);
        let messages = push_messages(&ticket, Arc::clone(&schema), batches.clone());
        let (ticket_back, schema_back, batches_back) =
            receive_put(messages).await.expect("complete push");
        assert_eq!(ticket_back, ticket);
        assert_eq!(schema_back, schema);
        assert_eq!(batches_back, batches);
    }

    #[tokio::test]
    async fn an_empty_object_still_carries_its_schema_and_marker() {
        let (schema, _) = object(0);
        let ticket = Ticket::from(vec![1]);
        let (_, schema_back, batches_back) =
            receive_put(push_messages(&ticket, Arc::clone(&schema), vec![]))
                .await
                .expect("complete push");
        assert_eq!(schema_back, schema);
        assert!(batches_back.is_empty());
    }

    #[tokio::test]
    async fn a_push_cut_short_is_refused() {
        let (schema, batches) = object(3);
        let ticket = Ticket::from(vec![2]);
        // What the server sees when the sender fails after two messages: a clean end.
        let truncated = push_messages(&ticket, schema, batches).take(2);
        let err = receive_put(truncated).await.err();
        assert!(
            matches!(&err, Some(Error::Protocol(m)) if m.contains("end-of-object marker")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_failing_sender_never_stamps_the_marker() {
        let (schema, batches) = object(2);
        let failing = stream::iter(batches.into_iter().map(Ok))
            .chain(stream::once(ready(Err(Error::Internal(
                "disk gone".into(),
            )))))
            .boxed();
        let messages: Vec<_> = mark_end(encode_object(
            ObjectStream::new(schema, failing),
            None,
            1 << 20,
            Error::InvalidInput,
        ))
        .collect()
        .await;
        assert!(matches!(messages.last(), Some(Err(_))));
        assert!(
            messages
                .iter()
                .flatten()
                .all(|m| m.app_metadata.as_ref() != END_OF_OBJECT)
        );
    }

    #[test]
    fn descriptors_name_tickets() {
        let ticket = Ticket::from(vec![0xab]);
        let back = ticket_from_descriptor(Some(&ticket_descriptor(&ticket))).expect("cmd");
        assert_eq!(back, ticket);
        let path = FlightDescriptor::new_path(vec!["obj".into()]);
        assert_eq!(
            ticket_from_descriptor(Some(&path))
                .expect("path")
                .as_bytes(),
            b"obj"
        );
        assert!(matches!(
            ticket_from_descriptor(None),
            Err(Error::InvalidInput(_))
        ));
        let empty = FlightDescriptor::new_cmd(Bytes::new());
        assert!(matches!(
            ticket_from_descriptor(Some(&empty)),
            Err(Error::InvalidInput(_))
        ));
    }
}
