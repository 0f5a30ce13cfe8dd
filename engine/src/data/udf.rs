//! User functions: how `map_batches` runs (tasks or an actor pool, with resources), and the
//! row conversions behind `from_items`, `map` and `flat_map` (serde rows <-> Arrow, through
//! arrow's JSON encoder and decoder).

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, TaskResult, UserError};

/// A user function over batches (`map_batches` with task compute).
pub type BatchFn = dyn Fn(RecordBatch) -> TaskResult<RecordBatch> + Send + Sync;

/// A user function in another process, called with several batches in one round trip: it
/// returns the outputs of each, in order, as one batch.
pub type BatchesFn = dyn Fn(Vec<RecordBatch>) -> TaskResult<RecordBatch> + Send + Sync;

/// A stateful user function: built once per actor, then called for each batch.
pub type BatchFnMut = Box<dyn FnMut(RecordBatch) -> TaskResult<RecordBatch> + Send>;

/// Builds the per-actor state of an actor-pool `map_batches` (the constructor).
pub type ActorFactory = dyn Fn() -> TaskResult<BatchFnMut> + Send + Sync;

/// The function of a `map_batches`.
#[derive(Clone)]
pub enum MapUdf {
    /// Stateless: runs inside the read/map tasks.
    Fn(Arc<BatchFn>),
    /// Stateless, in another process (a front end's function): the read/map tasks send it
    /// their batches in groups, one round trip per group.
    Grouped(Arc<BatchesFn>),
    /// Stateful: each actor of the pool builds its state once and is called per batch.
    Actor(Arc<ActorFactory>),
}

impl fmt::Debug for MapUdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MapUdf::Fn(_) => "MapUdf::Fn",
            MapUdf::Grouped(_) => "MapUdf::Grouped",
            MapUdf::Actor(_) => "MapUdf::Actor",
        })
    }
}

/// Where `map_batches` runs its function (Ray's `compute=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Compute {
    /// In the pipeline's tasks (the default).
    #[default]
    Tasks,
    /// In a pool of actors that grows from `min_size` to `max_size` while every actor is busy
    /// and the cluster has room for another (Ray's `ActorPoolStrategy`).
    Actors {
        /// Actors started with the pool.
        min_size: usize,
        /// Most actors.
        max_size: usize,
    },
}

/// Options of `map_batches` (Ray's names).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapOptions {
    /// Rows per call (`None`: as the batches come).
    pub batch_size: Option<usize>,
    /// Tasks or an actor pool.
    pub compute: Compute,
    /// CPUs per task or per actor (`None`: 1 per actor; tasks keep the pipeline's 1).
    pub num_cpus: Option<f64>,
    /// GPUs per task or per actor.
    pub num_gpus: f64,
    /// Custom resources per task or per actor.
    pub resources: Vec<(String, f64)>,
    /// Most tasks running this function at once (Ray's `concurrency` of a function, or
    /// `TaskPoolStrategy(size)`); `None`: as many as the pipeline runs.
    #[serde(default)]
    pub max_tasks: Option<usize>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            batch_size: None,
            compute: Compute::Tasks,
            num_cpus: None,
            num_gpus: 0.0,
            resources: Vec::new(),
            max_tasks: None,
        }
    }
}

impl MapOptions {
    /// Options with only `batch_size` set.
    pub fn batch_size(batch_size: Option<usize>) -> Self {
        MapOptions {
            batch_size,
            ..MapOptions::default()
        }
    }

    /// True when the function asks for no resources beyond the pipeline's own.
    pub(crate) fn default_resources(&self) -> bool {
        self.num_cpus.is_none() && self.num_gpus == 0.0 && self.resources.is_empty()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_tasks == Some(0) {
            return Err(Error::InvalidArgument(
                "concurrency must be at least 1 task".into(),
            ));
        }
        if self.max_tasks.is_some() && matches!(self.compute, Compute::Actors { .. }) {
            return Err(Error::InvalidArgument(
                "an actor pool's concurrency is its size (min_size, max_size), not a task cap"
                    .into(),
            ));
        }
        if let Compute::Actors { min_size, max_size } = self.compute
            && (min_size == 0 || max_size < min_size)
        {
            return Err(Error::InvalidArgument(format!(
                "an actor pool needs 1 <= min_size <= max_size, got min_size={min_size}, \
                 max_size={max_size}"
            )));
        }
        let amounts = self
            .num_cpus
            .iter()
            .chain(std::iter::once(&self.num_gpus))
            .chain(self.resources.iter().map(|(_, a)| a));
        if let Some(bad) = amounts.into_iter().find(|a| !a.is_finite() || **a < 0.0) {
            return Err(Error::InvalidArgument(format!(
                "resource amounts must be finite and >= 0, got {bad}"
            )));
        }
        Ok(())
    }

    /// `, compute=actors(1..4), num_gpus=1` — what differs from the defaults, for plans.
    pub(crate) fn describe(&self) -> String {
        let mut s = String::new();
        if let Compute::Actors { min_size, max_size } = self.compute {
            s.push_str(&format!(", compute=actors({min_size}..{max_size})"));
        }
        if let Some(c) = self.num_cpus {
            s.push_str(&format!(", num_cpus={c}"));
        }
        if self.num_gpus > 0.0 {
            s.push_str(&format!(", num_gpus={}", self.num_gpus));
        }
        for (name, amount) in &self.resources {
            s.push_str(&format!(", {name}={amount}"));
        }
        s
    }
}

/// The top-level keys of a JSON object in the order they were written (serde_json's own
/// maps sort them).
fn key_order(json: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Keys;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Keys>(json).map_or_else(|_| Vec::new(), |k| k.0)
}

/// Rows (any serde type serializing to a map/struct) as one batch; the schema is inferred
/// from the rows, columns in the order the first row names them.
pub(crate) fn rows_to_batch<T: Serialize>(rows: &[T]) -> Result<RecordBatch> {
    let bad = |e: &dyn fmt::Display| Error::InvalidArgument(format!("rows to Arrow: {e}"));
    let mut order = Vec::new();
    let mut values = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let v = serde_json::to_value(r).map_err(|e| bad(&e))?;
        if !v.is_object() {
            return Err(Error::InvalidArgument(format!(
                "rows to Arrow: row {i} is not a map or struct: {v}"
            )));
        }
        if i == 0 {
            order = key_order(&serde_json::to_string(r).map_err(|e| bad(&e))?);
        }
        values.push(v);
    }
    let inferred = arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| bad(&e))?;
    // Columns in the first row's order, then any that only later rows have (by name).
    let mut fields: Vec<_> = order
        .iter()
        .filter_map(|k| inferred.field_with_name(k).ok().cloned())
        .collect();
    let mut rest: Vec<_> = inferred
        .fields()
        .iter()
        .filter(|f| !order.contains(f.name()))
        .map(|f| f.as_ref().clone())
        .collect();
    rest.sort_by(|a, b| a.name().cmp(b.name()));
    fields.extend(rest);
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|e| bad(&e))?;
    decoder.serialize(&values).map_err(|e| bad(&e))?;
    Ok(decoder
        .flush()
        .map_err(|e| bad(&e))?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

/// A batch as rows of `T` (through JSON objects, one per row; nulls are absent keys).
pub(crate) fn batch_to_rows<T: DeserializeOwned>(batch: &RecordBatch) -> TaskResult<Vec<T>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    w.write(batch)?;
    w.finish()?;
    let bytes = w.into_inner();
    serde_json::from_slice(&bytes)
        .map_err(|e| UserError::msg(format!("a row does not fit the function's type: {e}")))
}

/// Rows out of a row function as a batch; no rows give an empty batch without columns
/// (skipped downstream).
pub(crate) fn output_rows<U: Serialize>(rows: &[U]) -> TaskResult<RecordBatch> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    }
    rows_to_batch(rows).map_err(|e| UserError::msg(e.to_string()))
}
