//! Ray's tensor extension types in files: a column of tensors whose fixed shape differs from
//! file to file reads as Ray's variable-shaped tensor type, as Ray unifies them.
//!
//! A fixed-shape tensor column (`ray.data.arrow_tensor_v2`, `large_list<T>`, or the older
//! `ray.data.arrow_tensor`, `list<T>`; the shape as JSON in the field's extension metadata)
//! holds each row's values in C order. Ray's variable-shaped type
//! (`ray.data.arrow_variable_shaped_tensor`, `struct<data: large_list<T>, shape:
//! list<int64>>`, its number of dimensions as JSON) holds each row's shape beside its values.
//! Two fields unify when both are tensors of one value type; the result has the larger number
//! of dimensions, and a smaller shape gains leading axes of 1 (as Ray pads it).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, ListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields};

use crate::error::{Error, Result};

const EXT_NAME: &str = "ARROW:extension:name";
const EXT_META: &str = "ARROW:extension:metadata";
const FIXED: [&str; 2] = ["ray.data.arrow_tensor", "ray.data.arrow_tensor_v2"];
const VARIABLE: &str = "ray.data.arrow_variable_shaped_tensor";

/// What a tensor field holds.
enum Tensor {
    /// Every row of this shape.
    Fixed(Vec<i64>),
    /// Rows of this many dimensions, each with its shape.
    Variable(usize),
}

impl Tensor {
    fn ndim(&self) -> usize {
        match self {
            Tensor::Fixed(s) => s.len(),
            Tensor::Variable(n) => *n,
        }
    }
}

/// The tensor `field` holds and the field of its values, if it is one of Ray's tensor types.
fn tensor(field: &Field) -> Option<(Tensor, FieldRef)> {
    let name = field.metadata().get(EXT_NAME)?;
    let meta = field.metadata().get(EXT_META)?;
    if FIXED.contains(&name.as_str()) {
        let shape: Vec<i64> = serde_json::from_str(meta).ok()?;
        let item = match field.data_type() {
            DataType::List(f) | DataType::LargeList(f) => f.clone(),
            _ => return None,
        };
        return Some((Tensor::Fixed(shape), item));
    }
    if name == VARIABLE {
        let ndim: usize = serde_json::from_str(meta).ok()?;
        let DataType::Struct(fields) = field.data_type() else {
            return None;
        };
        let (_, data) = fields.find("data")?;
        let DataType::LargeList(item) = data.data_type() else {
            return None;
        };
        return Some((Tensor::Variable(ndim), item.clone()));
    }
    None
}

/// The storage of Ray's variable-shaped tensors of `item` values.
fn variable_fields(item: &FieldRef) -> Fields {
    Fields::from(vec![
        Field::new("data", DataType::LargeList(item.clone()), true),
        Field::new(
            "shape",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        ),
    ])
}

/// The field that holds both `a`'s and `b`'s values: `a` where they are equal, Ray's
/// variable-shaped tensor type where they are tensors of one value type; `None` where they
/// conflict.
pub(crate) fn unify(a: &Field, b: &Field) -> Option<Field> {
    if a == b {
        return Some(a.clone());
    }
    if a.name() != b.name() {
        return None;
    }
    let ((ta, item), (tb, item_b)) = (tensor(a)?, tensor(b)?);
    if item.data_type() != item_b.data_type() {
        return None;
    }
    let ndim = ta.ndim().max(tb.ndim());
    let meta = HashMap::from([
        (EXT_NAME.to_string(), VARIABLE.to_string()),
        (EXT_META.to_string(), ndim.to_string()),
    ]);
    Some(Field::new(a.name(), DataType::Struct(variable_fields(&item)), true).with_metadata(meta))
}

/// `array`, a column of field `from`, as a column of field `to` (see [`unify`]).
pub(crate) fn conform(array: &ArrayRef, from: &Field, to: &Field) -> Result<ArrayRef> {
    if from == to {
        return Ok(array.clone());
    }
    let lost = || {
        Error::Internal(format!(
            "column {:?}: no tensor conversion from {} to {}",
            from.name(),
            from.data_type(),
            to.data_type()
        ))
    };
    let ((kind, _), (target, item)) =
        (tensor(from).ok_or_else(lost)?, tensor(to).ok_or_else(lost)?);
    let ndim = target.ndim();
    let pad = |shape: &[i64], out: &mut Vec<i64>| {
        out.extend(std::iter::repeat_n(1, ndim.saturating_sub(shape.len())));
        out.extend_from_slice(shape);
    };
    let rows = array.len();
    let (data, mut shapes) = match kind {
        Tensor::Fixed(shape) => {
            let data = arrow::compute::cast(array, &DataType::LargeList(item.clone()))?;
            let mut shapes = Vec::with_capacity(rows * ndim);
            for _ in 0..rows {
                pad(&shape, &mut shapes);
            }
            (data, shapes)
        }
        Tensor::Variable(_) => {
            let s = array.as_struct();
            let old = s.column_by_name("shape").ok_or_else(lost)?.as_list::<i32>();
            let mut shapes = Vec::with_capacity(rows * ndim);
            for r in 0..rows {
                let row = old.value(r);
                let row = row.as_primitive::<arrow::datatypes::Int64Type>();
                pad(row.values(), &mut shapes);
            }
            (s.column_by_name("data").ok_or_else(lost)?.clone(), shapes)
        }
    };
    let fields = variable_fields(&item);
    let shape_item = match fields[1].data_type() {
        DataType::List(f) => f.clone(),
        _ => return Err(lost()),
    };
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(ndim, rows));
    let values = Int64Array::from(std::mem::take(&mut shapes));
    let shape = ListArray::try_new(shape_item, offsets, Arc::new(values), None)?;
    Ok(Arc::new(StructArray::try_new(
        fields,
        vec![data, Arc::new(shape)],
        array.nulls().cloned(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::LargeListArray;
    use arrow::datatypes::Float64Type;

    fn fixed(shape: &str, name: &str) -> Field {
        let item = Arc::new(Field::new("item", DataType::Float64, true));
        Field::new("t", DataType::LargeList(item), true).with_metadata(HashMap::from([
            (EXT_NAME.to_string(), name.to_string()),
            (EXT_META.to_string(), shape.to_string()),
        ]))
    }

    #[test]
    fn fixed_shapes_that_differ_unify_to_ray_variable_shaped_tensors() {
        let (a, b) = (fixed("[2, 2]", FIXED[1]), fixed("[3]", FIXED[1]));
        let u = unify(&a, &b).expect("tensors of one value type unify");
        assert_eq!(u.metadata()[EXT_NAME], VARIABLE);
        assert_eq!(u.metadata()[EXT_META], "2");
        assert_eq!(unify(&u, &a).as_ref(), Some(&u));
        // Values of another type, or a column that is not a tensor, conflict.
        let ints = Field::new(
            "t",
            DataType::LargeList(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        )
        .with_metadata(a.metadata().clone());
        assert!(unify(&a, &ints).is_none());
        assert!(unify(&a, &Field::new("t", DataType::Float64, true)).is_none());

        // Rows of shape (3,) become shape (1, 3), their values as they were; a null row
        // stays null.
        let rows = LargeListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(1.0), Some(2.0), Some(3.0)]),
            None,
        ]);
        let out = conform(&(Arc::new(rows) as ArrayRef), &b, &u).unwrap();
        let s = out.as_struct();
        assert_eq!(out.data_type(), u.data_type());
        assert!(s.is_valid(0) && s.is_null(1));
        let shape = s.column_by_name("shape").unwrap().as_list::<i32>();
        assert_eq!(
            shape
                .value(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values(),
            &[1, 3]
        );
        let data = s.column_by_name("data").unwrap().as_list::<i64>();
        assert_eq!(
            data.value(0).as_primitive::<Float64Type>().values(),
            &[1.0, 2.0, 3.0]
        );
    }
}
