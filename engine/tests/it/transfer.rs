use std::sync::Arc;

use volley::arrow::array::{Int64Array, RecordBatch};
use volley::core::transfer::{fetch, serve_objects};
use volley::{Block, Error};

use crate::start_with;

fn block(n: i64) -> Block {
    Block::from(
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from_iter_values(0..n)) as _)])
            .unwrap(),
    )
}

#[test]
fn objects_travel_over_flight_on_a_real_socket() {
    let _rt = start_with(2.0, |c| c.object_store_memory = Some(64 << 20));
    let server = serve_objects("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let b = volley::put(block(1_000_000)).unwrap();
    let v = volley::put((7u32, "seven".to_string())).unwrap();
    assert_eq!(fetch::<Block>(addr, b.id()).unwrap(), block(1_000_000));
    assert_eq!(
        fetch::<(u32, String)>(addr, v.id()).unwrap(),
        (7, "seven".to_string())
    );

    // A spilled object is restored for the transfer.
    let more: Vec<_> = (0..8)
        .map(|i| volley::put(block(1_000_000 + i)).unwrap())
        .collect();
    assert!(volley::object_store_stats().unwrap().spilled_objects_total > 0);
    assert_eq!(
        fetch::<Block>(addr, more[0].id()).unwrap(),
        block(1_000_000)
    );

    // Unknown objects are NotFound on the far side and ObjectLost here, naming the object.
    let gone = volley::put(1u8).unwrap();
    let gone_id = gone.id();
    drop(gone);
    match fetch::<u8>(addr, gone_id) {
        Err(Error::ObjectLost { object, .. }) => assert_eq!(object, gone_id.to_string()),
        other => panic!("expected ObjectLost, got {other:?}"),
    }

    // A pushed object is held by the server until taken.
    let pushed_id = volley::ObjectId { index: 9, ..b.id() };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = block(10);
    rt.block_on(async {
        let client = volley_flight::FlightClient::connect(addr).await.unwrap();
        let ticket = volley_flight::Ticket::from(pushed_id.to_bytes().to_vec());
        client
            .push(ticket, data.schema().clone(), data.batches().to_vec())
            .await
            .unwrap();
    });
    drop(rt); // closes the client's connection
    let taken: volley::ObjectRef<Block> = server.take_pushed(pushed_id).unwrap();
    assert_eq!(volley::get(&taken).unwrap(), block(10));
    server.shutdown().unwrap();
}
