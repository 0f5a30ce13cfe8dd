//! Optimizer rules, one per file; each rewrites the plan bottom-up and must keep results
//! unchanged.

mod fuse_maps;
mod push_filter;
mod push_limit;
mod push_projection;

use std::sync::Arc;

use crate::data::logical::LogicalPlan;

/// A rewrite of one node whose inputs are already rewritten.
pub(crate) trait Rule {
    /// Rewrites `plan` (return it unchanged when the rule does not apply).
    fn rewrite(&self, plan: Arc<LogicalPlan>) -> Arc<LogicalPlan>;
}

/// The rules, in the order they run.
fn rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(fuse_maps::FuseMaps),
        Box::new(push_filter::PushFilterIntoRead),
        Box::new(push_projection::PushProjectionIntoRead),
        Box::new(push_limit::PushLimitIntoRead),
    ]
}

/// Runs every rule over the whole plan.
pub(crate) fn optimize(plan: &Arc<LogicalPlan>) -> Arc<LogicalPlan> {
    rules()
        .iter()
        .fold(plan.clone(), |p, r| apply(r.as_ref(), &p))
}

fn apply(rule: &dyn Rule, plan: &Arc<LogicalPlan>) -> Arc<LogicalPlan> {
    let with_inputs = with_new_inputs(plan, |i| apply(rule, i));
    rule.rewrite(with_inputs)
}

/// `plan` with each input replaced by `f(input)`.
pub(crate) fn with_new_inputs(
    plan: &Arc<LogicalPlan>,
    f: impl Fn(&Arc<LogicalPlan>) -> Arc<LogicalPlan>,
) -> Arc<LogicalPlan> {
    let node = match plan.as_ref() {
        LogicalPlan::ReadParquet { .. }
        | LogicalPlan::ReadText { .. }
        | LogicalPlan::Range { .. }
        | LogicalPlan::FromBatches { .. }
        | LogicalPlan::FromRefs { .. } => {
            return plan.clone();
        }
        LogicalPlan::MapBatches {
            input,
            name,
            udf,
            opts,
            kind,
        } => LogicalPlan::MapBatches {
            input: f(input),
            name: name.clone(),
            udf: udf.clone(),
            opts: opts.clone(),
            kind: *kind,
        },
        LogicalPlan::MapGroups {
            input,
            keys,
            name,
            udf,
        } => LogicalPlan::MapGroups {
            input: f(input),
            keys: keys.clone(),
            name: name.clone(),
            udf: udf.clone(),
        },
        LogicalPlan::Zip { left, right } => LogicalPlan::Zip {
            left: f(left),
            right: f(right),
        },
        LogicalPlan::Join { left, right, spec } => LogicalPlan::Join {
            left: f(left),
            right: f(right),
            spec: spec.clone(),
        },
        LogicalPlan::Filter { input, predicate } => LogicalPlan::Filter {
            input: f(input),
            predicate: predicate.clone(),
        },
        LogicalPlan::Project { input, columns } => LogicalPlan::Project {
            input: f(input),
            columns: columns.clone(),
        },
        LogicalPlan::Limit { input, n } => LogicalPlan::Limit {
            input: f(input),
            n: *n,
        },
        LogicalPlan::Sort {
            input,
            keys,
            boundaries,
        } => LogicalPlan::Sort {
            input: f(input),
            keys: keys.clone(),
            boundaries: boundaries.clone(),
        },
        LogicalPlan::Aggregate { input, keys, aggs } => LogicalPlan::Aggregate {
            input: f(input),
            keys: keys.clone(),
            aggs: aggs.clone(),
        },
        LogicalPlan::Repartition { input, n } => LogicalPlan::Repartition {
            input: f(input),
            n: *n,
        },
        LogicalPlan::RandomShuffle { input, seed } => LogicalPlan::RandomShuffle {
            input: f(input),
            seed: *seed,
        },
        LogicalPlan::Union { inputs, schema } => LogicalPlan::Union {
            inputs: inputs.iter().map(f).collect(),
            schema: schema.clone(),
        },
    };
    Arc::new(node)
}
