//! Maps a Volley shared-memory segment in a separate process, decodes it without copying
//! and prints what it found: `rows=<n> sum=<sum of the first int64 column> zero_copy=<bool>`.
//!
//! `zero_copy` is true when every buffer of every column points inside the mapping.

use std::process::ExitCode;

use volley::ObjectData;
use volley::arrow::array::{Array, Int64Array};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: shm-reader <segment path>");
        return ExitCode::from(2);
    };
    let mapped = match volley::core::shm::map_segment(std::path::Path::new(&path)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("shm-reader: {e}");
            return ExitCode::from(1);
        }
    };
    let ObjectData::Arrow(block) = mapped.data() else {
        eprintln!("shm-reader: {path} holds a bytes object, not Arrow");
        return ExitCode::from(1);
    };
    let range = mapped.address_range();
    let mut zero_copy = true;
    let mut sum: i64 = 0;
    for batch in block.batches() {
        for col in batch.columns() {
            let data = col.to_data();
            for buf in data.buffers() {
                let p = buf.as_ptr() as usize;
                zero_copy &= buf.is_empty() || (range.contains(&p) && p + buf.len() <= range.end);
            }
        }
        if let Some(ints) = batch.column(0).as_any().downcast_ref::<Int64Array>() {
            sum = ints.values().iter().fold(sum, |a, v| a.wrapping_add(*v));
        }
    }
    println!("rows={} sum={sum} zero_copy={zero_copy}", block.num_rows());
    ExitCode::SUCCESS
}
