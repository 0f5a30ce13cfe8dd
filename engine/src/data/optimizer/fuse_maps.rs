//! Fuses two adjacent stateless `MapBatches` (task compute) with the same options into one
//! call chain, so a batch goes through both functions in one call without an intermediate
//! object. Actor-pool maps keep their own pools.

use std::sync::Arc;

use crate::data::logical::{LogicalPlan, MapKind};
use crate::data::optimizer::Rule;
use crate::data::udf::MapUdf;

pub(crate) struct FuseMaps;

impl Rule for FuseMaps {
    fn rewrite(&self, plan: Arc<LogicalPlan>) -> Arc<LogicalPlan> {
        let LogicalPlan::MapBatches {
            input,
            name,
            udf: MapUdf::Fn(second),
            opts,
            kind: MapKind::Batches,
        } = plan.as_ref()
        else {
            return plan;
        };
        let LogicalPlan::MapBatches {
            input: inner,
            name: inner_name,
            udf: MapUdf::Fn(first),
            opts: inner_opts,
            kind: MapKind::Batches,
        } = input.as_ref()
        else {
            return plan;
        };
        if opts != inner_opts {
            return plan;
        }
        let (first, second) = (first.clone(), second.clone());
        Arc::new(LogicalPlan::MapBatches {
            input: inner.clone(),
            name: format!("{inner_name}->{name}"),
            udf: MapUdf::Fn(Arc::new(move |b| second(first(b)?))),
            opts: opts.clone(),
            kind: MapKind::Batches,
        })
    }
}
