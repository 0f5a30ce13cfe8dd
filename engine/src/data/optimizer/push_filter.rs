//! Pushes a filter into the parquet read below it: row groups are pruned with their
//! statistics and rows are filtered as they are read.

use std::sync::Arc;

use crate::data::logical::LogicalPlan;
use crate::data::optimizer::Rule;

pub(crate) struct PushFilterIntoRead;

impl Rule for PushFilterIntoRead {
    fn rewrite(&self, plan: Arc<LogicalPlan>) -> Arc<LogicalPlan> {
        let LogicalPlan::Filter { input, predicate } = plan.as_ref() else {
            return plan;
        };
        let LogicalPlan::ReadParquet {
            source,
            columns,
            filter,
            limit: None,
        } = input.as_ref()
        else {
            return plan;
        };
        let filter = Some(match filter {
            Some(f) => f.clone().and(predicate.clone()),
            None => predicate.clone(),
        });
        Arc::new(LogicalPlan::ReadParquet {
            source: source.clone(),
            columns: columns.clone(),
            filter,
            limit: None,
        })
    }
}
