//! Pushes the columns a projection (or an aggregate) needs into the parquet read below it,
//! so the other columns are never fetched or decoded.

use std::sync::Arc;

use crate::data::expr::columns;
use crate::data::logical::LogicalPlan;
use crate::data::optimizer::Rule;

pub(crate) struct PushProjectionIntoRead;

impl Rule for PushProjectionIntoRead {
    fn rewrite(&self, plan: Arc<LogicalPlan>) -> Arc<LogicalPlan> {
        match plan.as_ref() {
            LogicalPlan::Project {
                input,
                columns: items,
            } => {
                let needed = items.iter().flat_map(|(e, _)| columns(e)).collect();
                match narrow_read(input, needed) {
                    Some(read) => Arc::new(LogicalPlan::Project {
                        input: read,
                        columns: items.clone(),
                    }),
                    None => plan,
                }
            }
            // An aggregate needs only its keys and aggregated columns.
            LogicalPlan::Aggregate { input, keys, aggs } => {
                let mut needed = keys.clone();
                needed.extend(aggs.iter().filter_map(|a| a.column.clone()));
                match narrow_read(input, needed) {
                    Some(read) => Arc::new(LogicalPlan::Aggregate {
                        input: read,
                        keys: keys.clone(),
                        aggs: aggs.clone(),
                    }),
                    None => plan,
                }
            }
            _ => plan,
        }
    }
}

/// `input` (a parquet read) reading only `needed` and what its filter uses, or `None` when
/// it already does or is not a parquet read.
fn narrow_read(input: &Arc<LogicalPlan>, mut needed: Vec<String>) -> Option<Arc<LogicalPlan>> {
    let LogicalPlan::ReadParquet {
        source,
        columns: read_cols,
        filter,
        limit,
    } = input.as_ref()
    else {
        return None;
    };
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
        return None;
    }
    Some(Arc::new(LogicalPlan::ReadParquet {
        source: source.clone(),
        columns: Some(needed),
        filter: filter.clone(),
        limit: *limit,
    }))
}
