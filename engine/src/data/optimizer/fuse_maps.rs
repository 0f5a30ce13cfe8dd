//! Fuses two adjacent `MapBatches` with the same batch size into one call chain, so a block
//! goes through both functions in one task without an intermediate object.

use std::sync::Arc;

use crate::data::logical::LogicalPlan;
use crate::data::optimizer::Rule;

pub(crate) struct FuseMaps;

impl Rule for FuseMaps {
    fn rewrite(&self, plan: Arc<LogicalPlan>) -> Arc<LogicalPlan> {
        let LogicalPlan::MapBatches {
            input,
            name,
            udf,
            batch_size,
        } = plan.as_ref()
        else {
            return plan;
        };
        let LogicalPlan::MapBatches {
            input: inner,
            name: inner_name,
            udf: inner_udf,
            batch_size: inner_size,
        } = input.as_ref()
        else {
            return plan;
        };
        if batch_size != inner_size {
            return plan;
        }
        let (first, second) = (inner_udf.clone(), udf.clone());
        Arc::new(LogicalPlan::MapBatches {
            input: inner.clone(),
            name: format!("{inner_name}->{name}"),
            udf: Arc::new(move |b| second(first(b)?)),
            batch_size: *batch_size,
        })
    }
}
