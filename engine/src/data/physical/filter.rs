//! `FilterOp`: keeps the rows where a DataFusion predicate is true.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;

use crate::data::expr;
use crate::data::physical::{OpCounters, RowOp, RowOpState};
use crate::error::Result;

/// Filters rows.
pub(crate) struct FilterOp {
    /// The predicate (compiled per task against the batches' schema).
    predicate: Expr,
    counters: OpCounters,
}

impl FilterOp {
    pub(crate) fn new(predicate: Expr) -> Self {
        FilterOp {
            predicate,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for FilterOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FilterOp({})", self.predicate)
    }
}

struct State<'a> {
    op: &'a FilterOp,
    compiled: Option<Arc<dyn PhysicalExpr>>,
}

impl RowOpState for State<'_> {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let p = match &self.compiled {
            Some(p) => p.clone(),
            None => {
                let p = expr::compile(&self.op.predicate, &batch.schema())?;
                self.compiled = Some(p.clone());
                p
            }
        };
        let b = expr::filter(&batch, &p)?;
        if b.num_rows() > 0 {
            out.push(b);
        }
        Ok(())
    }
}

impl RowOp for FilterOp {
    fn start(&self) -> Box<dyn RowOpState + '_> {
        Box::new(State {
            op: self,
            compiled: None,
        })
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}
