//! Logical plan → physical plan: one exhaustive match. Row-wise operators fuse into the
//! pipeline of their source; a limit with operators above it is materialized first (at most
//! `n` rows), so it means what it says.

use std::sync::Arc;

use crate::data::context::DataContext;
use crate::data::logical::{LogicalPlan, MapKind};
use crate::data::physical::{
    AggregateExchange, ConformOp, ExchangeOp, FilterOp, FromBatchesOp, FromRefsOp, JoinOp,
    LimitBarrierOp, MapBatchesOp, MapGroupsExchange, PhysicalPlan, Pipeline, ProjectOp,
    RandomShuffleExchange, RangeOp, ReadParquetOp, ReadTextOp, RepartitionExchange, RowOp,
    SortExchange, SourceOp, ZipOp,
};
use crate::error::Result;

/// What the planner needs from the runtime.
pub(crate) struct PlanEnv<'a> {
    pub(crate) ctx: &'a DataContext,
    pub(crate) io: tokio::runtime::Handle,
    pub(crate) cpus: usize,
}

/// Plans `plan` (already optimized).
pub(crate) fn plan(plan: &Arc<LogicalPlan>, env: &PlanEnv<'_>) -> Result<PhysicalPlan> {
    let (inner, limit) = match plan.as_ref() {
        LogicalPlan::Limit { input, n } => (input, Some(*n)),
        _ => (plan, None),
    };
    let parts = pipelines(inner, env)?;
    let pipelines = parts
        .into_iter()
        .map(|(source, ops)| Arc::new(Pipeline { source, ops }))
        .collect();
    Ok(PhysicalPlan {
        pipelines,
        limit,
        state: Default::default(),
    })
}

type Part = (Arc<dyn SourceOp>, Vec<Arc<dyn RowOp>>);

fn pipelines(plan: &Arc<LogicalPlan>, env: &PlanEnv<'_>) -> Result<Vec<Part>> {
    let with_op = |input: &Arc<LogicalPlan>, op: Arc<dyn RowOp>| -> Result<Vec<Part>> {
        let mut parts = pipelines(input, env)?;
        for p in &mut parts {
            p.1.push(op.clone());
        }
        Ok(parts)
    };
    match plan.as_ref() {
        LogicalPlan::ReadParquet {
            source,
            columns,
            filter,
            limit,
        } => {
            let read = ReadParquetOp::new(
                source.clone(),
                columns.clone(),
                filter.clone(),
                *limit,
                read_target(env, source.total_bytes()),
                env.ctx.read_batch_rows,
                env.io.clone(),
            )?;
            let mut ops: Vec<Arc<dyn RowOp>> = Vec::new();
            if let Some(f) = filter {
                ops.push(Arc::new(FilterOp::new(f.clone())));
            }
            Ok(vec![(Arc::new(read), ops)])
        }
        LogicalPlan::ReadText { source } => {
            let read = ReadTextOp::new(
                source.clone(),
                read_target(env, source.total_bytes()),
                env.ctx.read_batch_rows,
                env.io.clone(),
            );
            Ok(vec![(Arc::new(read), Vec::new())])
        }
        LogicalPlan::Range { n, blocks } => {
            let fragments = blocks.unwrap_or_else(|| {
                let by_size = (n * 8).div_ceil(env.ctx.target_max_block_size.max(1));
                by_size.max((2 * env.cpus as u64).min(*n)).max(1)
            });
            Ok(vec![(
                Arc::new(RangeOp::new(*n, fragments, env.ctx.read_batch_rows)),
                Vec::new(),
            )])
        }
        LogicalPlan::FromBatches { batches, .. } => Ok(vec![(
            Arc::new(FromBatchesOp::new(batches.clone())),
            Vec::new(),
        )]),
        LogicalPlan::FromRefs { blocks, .. } => Ok(vec![(
            Arc::new(FromRefsOp::new(blocks.clone())),
            Vec::new(),
        )]),
        LogicalPlan::MapBatches {
            input,
            name,
            udf,
            opts,
            kind,
        } => {
            let shown = match kind {
                MapKind::Batches => name.clone(),
                MapKind::Rows => format!("map {name}"),
                MapKind::FlatMap => format!("flat_map {name}"),
            };
            with_op(input, Arc::new(MapBatchesOp::new(shown, udf, opts)))
        }
        LogicalPlan::MapGroups {
            input,
            keys,
            name,
            udf,
        } => exchange(
            input,
            Arc::new(MapGroupsExchange::new(
                keys.clone(),
                name.clone(),
                udf.clone(),
            )),
            env,
        ),
        LogicalPlan::Zip { left, right } => {
            let side =
                |p: &Arc<LogicalPlan>| crate::data::Dataset::from_plan(p.clone(), env.ctx.clone());
            Ok(vec![(
                Arc::new(ZipOp::new(side(left), side(right))),
                Vec::new(),
            )])
        }
        LogicalPlan::Join { left, right, spec } => {
            let side =
                |p: &Arc<LogicalPlan>| crate::data::Dataset::from_plan(p.clone(), env.ctx.clone());
            Ok(vec![(
                Arc::new(JoinOp::new(
                    side(left),
                    side(right),
                    spec.clone(),
                    env.ctx.clone(),
                )),
                Vec::new(),
            )])
        }
        LogicalPlan::Filter { input, predicate } => {
            with_op(input, Arc::new(FilterOp::new(predicate.clone())))
        }
        LogicalPlan::Project { input, columns } => {
            with_op(input, Arc::new(ProjectOp::new(columns.clone())))
        }
        LogicalPlan::Limit { input, n } => {
            // Operators above this limit: its first n rows are taken when the plan runs.
            let ds = crate::data::Dataset::from_plan(input.clone(), env.ctx.clone());
            Ok(vec![(Arc::new(LimitBarrierOp::new(ds, *n)), Vec::new())])
        }
        LogicalPlan::Sort {
            input,
            keys,
            boundaries,
        } => exchange(
            input,
            Arc::new(SortExchange::new(keys.clone(), boundaries.clone())),
            env,
        ),
        LogicalPlan::Aggregate { input, keys, aggs } => exchange(
            input,
            Arc::new(AggregateExchange::new(
                keys.clone(),
                aggs.clone(),
                env.io.clone(),
            )),
            env,
        ),
        LogicalPlan::Repartition { input, n } => {
            exchange(input, Arc::new(RepartitionExchange::new(*n)), env)
        }
        LogicalPlan::RandomShuffle { input, seed } => {
            exchange(input, Arc::new(RandomShuffleExchange::new(*seed)), env)
        }
        LogicalPlan::Union { inputs, schema } => {
            let mut out = Vec::new();
            for i in inputs {
                out.extend(match schema {
                    Some(s) => with_op(i, Arc::new(ConformOp::new(s.clone())))?,
                    None => pipelines(i, env)?,
                });
            }
            Ok(out)
        }
    }
}

/// An all-to-all operator over `input`: a barrier source of its reducer outputs.
fn exchange(
    input: &Arc<LogicalPlan>,
    ex: Arc<dyn crate::data::physical::exchange_api::Exchange>,
    env: &PlanEnv<'_>,
) -> Result<Vec<Part>> {
    let inner = plan(input, env)?;
    let op = ExchangeOp::new(inner, ex, env.ctx.clone(), env.cpus);
    Ok(vec![(Arc::new(op), Vec::new())])
}

/// Bytes per read task for a source of `total` bytes: the block target, but small enough
/// that every CPU gets two tasks (and at least 1 MiB).
fn read_target(env: &PlanEnv<'_>, total: u64) -> u64 {
    let spread = total / (2 * env.cpus.max(1) as u64);
    spread.min(env.ctx.target_max_block_size).max(1 << 20)
}
