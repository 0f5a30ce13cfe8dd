//! Pushes the columns a projection needs into the parquet read below it, so the other
//! columns are never fetched or decoded.

use std::sync::Arc;

use crate::data::expr::columns;
use crate::data::logical::LogicalPlan;
use crate::data::optimizer::Rule;

pub(crate) struct PushProjectionIntoRead;

impl Rule for PushProjectionIntoRead {
    fn rewrite(&self, plan: Arc<LogicalPlan>) -> Arc<LogicalPlan> {
        let LogicalPlan::Project {
            input,
            columns: items,
        } = plan.as_ref()
        else {
            return plan;
        };
        let LogicalPlan::ReadParquet {
            source,
            columns: read_cols,
            filter,
            limit,
        } = input.as_ref()
        else {
            return plan;
        };
        let mut needed: Vec<String> = items.iter().flat_map(|(e, _)| columns(e)).collect();
        if let Some(f) = filter {
            needed.extend(columns(f));
        }
        // Keep the file's column order.
        let needed: Vec<String> = source
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| needed.contains(n))
            .filter(|n| read_cols.as_ref().is_none_or(|rc| rc.contains(n)))
            .collect();
        if read_cols.as_ref() == Some(&needed) {
            return plan;
        }
        let read = Arc::new(LogicalPlan::ReadParquet {
            source: source.clone(),
            columns: Some(needed),
            filter: filter.clone(),
            limit: *limit,
        });
        Arc::new(LogicalPlan::Project {
            input: read,
            columns: items.clone(),
        })
    }
}
