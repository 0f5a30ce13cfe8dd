//! `ProjectOp`: computes output columns from DataFusion expressions (select, drop, rename,
//! with_column). `ConformOp`: gives blocks a schema that differs from theirs in nullability
//! only (a union's inputs).

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;

use crate::data::expr;
use crate::data::physical::{OpCounters, RowOp, RowOpState};
use crate::error::{Error, Result};

/// Projects columns.
pub(crate) struct ProjectOp {
    /// `(expression, output name)` per output column (compiled per task).
    columns: Vec<(Expr, String)>,
    counters: OpCounters,
}

impl ProjectOp {
    pub(crate) fn new(columns: Vec<(Expr, String)>) -> Self {
        ProjectOp {
            columns,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for ProjectOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ProjectOp({})",
            crate::data::logical::projection_text(&self.columns)
        )
    }
}

struct State<'a> {
    op: &'a ProjectOp,
    compiled: Option<(Vec<Arc<dyn PhysicalExpr>>, SchemaRef)>,
}

impl RowOpState for State<'_> {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.compiled.is_none() {
            let input = batch.schema();
            let exprs = self
                .op
                .columns
                .iter()
                .map(|(e, _)| expr::compile(e, &input))
                .collect::<Result<Vec<_>>>()?;
            let fields = self
                .op
                .columns
                .iter()
                .map(|(e, n)| expr::field(e, n, &input))
                .collect::<Result<Vec<_>>>()?;
            self.compiled = Some((exprs, expr::schema_of(fields)));
        }
        if let Some((exprs, schema)) = &self.compiled {
            out.push(expr::project(&batch, exprs, schema)?);
        }
        Ok(())
    }
}

impl RowOp for ProjectOp {
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

/// Gives each block `schema`: the same columns, nullable where the block's may not be.
pub(crate) struct ConformOp {
    schema: SchemaRef,
    counters: OpCounters,
}

impl ConformOp {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        ConformOp {
            schema,
            counters: OpCounters::default(),
        }
    }
}

impl fmt::Display for ConformOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConformOp")
    }
}

impl RowOpState for &ConformOp {
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        let conformed = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "a union input's block does not fit the union's schema {:?}: {e}",
                    self.schema
                ))
            })?;
        out.push(conformed);
        Ok(())
    }
}

impl RowOp for ConformOp {
    fn start(&self) -> Box<dyn RowOpState + '_> {
        Box::new(self)
    }

    fn counters(&self) -> &OpCounters {
        &self.counters
    }
}
