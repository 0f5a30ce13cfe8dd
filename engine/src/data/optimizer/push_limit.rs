//! Pushes a limit into the parquet read below it (through row-preserving projections), so
//! reads stop after enough rows.

use std::sync::Arc;

use crate::data::logical::LogicalPlan;
use crate::data::optimizer::Rule;

pub(crate) struct PushLimitIntoRead;

fn push(plan: &Arc<LogicalPlan>, n: usize) -> Option<Arc<LogicalPlan>> {
    match plan.as_ref() {
        // A read with a filter cannot stop after n rows of the file: the filter comes first.
        LogicalPlan::ReadParquet {
            source,
            columns,
            filter: None,
            limit,
        } => {
            let new = limit.map_or(n, |l| l.min(n));
            (Some(new) != *limit).then(|| {
                Arc::new(LogicalPlan::ReadParquet {
                    source: source.clone(),
                    columns: columns.clone(),
                    filter: None,
                    limit: Some(new),
                })
            })
        }
        LogicalPlan::Project { input, columns } => push(input, n).map(|i| {
            Arc::new(LogicalPlan::Project {
                input: i,
                columns: columns.clone(),
            })
        }),
        LogicalPlan::Limit { input, n: m } => push(input, n.min(*m)),
        _ => None,
    }
}

impl Rule for PushLimitIntoRead {
    fn rewrite(&self, plan: Arc<LogicalPlan>) -> Arc<LogicalPlan> {
        let LogicalPlan::Limit { input, n } = plan.as_ref() else {
            return plan;
        };
        match push(input, *n) {
            // The limit stays: it caps the total over all read tasks.
            Some(i) => Arc::new(LogicalPlan::Limit { input: i, n: *n }),
            None => plan,
        }
    }
}
