//! The schema of newline-delimited JSON as pyarrow reads it: every row's types (arrow-json's
//! inference), columns in the order their keys first appear (arrow-json's come in hash
//! order), and the widening that gives files with mixed values one schema.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The schema of every JSON line in `bytes`, columns (and struct fields) in the order their
/// keys first appear.
pub(crate) fn infer_json(bytes: &[u8]) -> Result<Schema, arrow::error::ArrowError> {
    let schema = infer_json_types(bytes)?;
    let mut order = KeyOrder::default();
    for line in bytes.split(|b| *b == b'\n') {
        // A line that does not parse made the inference fail already.
        let _ = Visit(&mut order).deserialize(&mut serde_json::Deserializer::from_slice(line));
    }
    Ok(Schema::new(order.arrange(schema.fields())))
}

/// The types of every JSON line in `bytes`, columns in no particular order (enough to check
/// rows against a schema: [`json_fits`]).
pub(crate) fn infer_json_types(bytes: &[u8]) -> Result<Schema, arrow::error::ArrowError> {
    Ok(arrow::json::reader::infer_json_schema(Cursor::new(bytes), None)?.0)
}

/// `schema` widened by a file's own schema `own` (see [`widen_type`]); the error names the
/// first column whose types do not widen.
pub(crate) fn widen(schema: &Schema, own: &Schema) -> Result<Schema, String> {
    Ok(Schema::new(widen_fields(schema.fields(), own.fields())?))
}

/// Whether rows of schema `own` (a file's, inferred from all its rows) decode into `schema`
/// without losing a value; the error names the first column that does not fit.
pub(crate) fn json_fits(own: &Schema, schema: &Schema) -> Result<(), String> {
    for f in own.fields() {
        let Ok(t) = schema.field_with_name(f.name()) else {
            return Err(format!(
                "column {:?} is not in the dataset's schema",
                f.name()
            ));
        };
        if widen_type(t.data_type(), f.data_type()).as_ref() != Some(t.data_type()) {
            return Err(format!(
                "column {:?} holds {} values, but the dataset's schema says {}",
                f.name(),
                f.data_type(),
                t.data_type()
            ));
        }
    }
    Ok(())
}

/// The type that holds values of both `a` and `b` without loss, as pyarrow's JSON reader
/// and Ray's schema unification widen them: the same type, a type and no values, integers
/// and floats as floats, lists and structs of such (a struct's fields are both's).
fn widen_type(a: &DataType, b: &DataType) -> Option<DataType> {
    Some(match (a, b) {
        _ if a == b => a.clone(),
        (DataType::Null, t) | (t, DataType::Null) => t.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
            DataType::Float64
        }
        (DataType::List(x), DataType::List(y)) => DataType::List(Arc::new(
            x.as_ref()
                .clone()
                .with_data_type(widen_type(x.data_type(), y.data_type())?),
        )),
        (DataType::Struct(x), DataType::Struct(y)) => {
            DataType::Struct(widen_fields(x, y).ok()?.into())
        }
        _ => return None,
    })
}

/// `a`'s fields widened by `b`'s, then `b`'s that `a` lacks.
fn widen_fields(a: &Fields, b: &Fields) -> Result<Vec<Field>, String> {
    let mut out: Vec<Field> = a.iter().map(|f| f.as_ref().clone()).collect();
    for f in b {
        match out.iter_mut().find(|o| o.name() == f.name()) {
            Some(o) => {
                let t = widen_type(o.data_type(), f.data_type()).ok_or_else(|| {
                    format!(
                        "column {:?} holds {} values here and {} values in other rows",
                        f.name(),
                        f.data_type(),
                        o.data_type()
                    )
                })?;
                *o = o.clone().with_data_type(t).with_nullable(true);
            }
            None => out.push(f.as_ref().clone().with_nullable(true)),
        }
    }
    Ok(out)
}

/// Object keys in the order they first appear; each with the keys of the objects under it
/// (in lists too: a list's objects share their list's entry).
#[derive(Default)]
struct KeyOrder(Vec<(String, KeyOrder)>);

impl KeyOrder {
    fn entry(&mut self, key: &str) -> &mut KeyOrder {
        let i = match self.0.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.0.push((key.to_string(), KeyOrder::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    /// `fields` in this order (a name never seen goes last), nested structs too.
    fn arrange(&self, fields: &Fields) -> Vec<Field> {
        let rank = |f: &Field| self.0.iter().position(|(k, _)| k == f.name());
        let mut out: Vec<Field> = fields
            .iter()
            .map(|f| {
                let inner = self.0.iter().find(|(k, _)| k == f.name()).map(|(_, o)| o);
                let t = match inner {
                    Some(o) => o.arrange_type(f.data_type()),
                    None => f.data_type().clone(),
                };
                f.as_ref().clone().with_data_type(t)
            })
            .collect();
        out.sort_by_key(|f| rank(f).unwrap_or(usize::MAX));
        out
    }

    fn arrange_type(&self, t: &DataType) -> DataType {
        match t {
            DataType::Struct(fields) => DataType::Struct(self.arrange(fields).into()),
            DataType::List(item) => DataType::List(Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(self.arrange_type(item.data_type())),
            )),
            other => other.clone(),
        }
    }
}

/// Records the keys of one JSON value into a [`KeyOrder`].
struct Visit<'a>(&'a mut KeyOrder);

impl<'de> DeserializeSeed<'de> for Visit<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Visit<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(Visit(self.0.entry(&key)))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Visit(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_come_in_the_order_their_keys_first_appear() {
        let rows =
            b"{\"z\": 1, \"s\": {\"q\": 1, \"b\": 2}}\n{\"a\": [{\"y\": 1, \"x\": 2}], \"m\": 1}\n";
        let schema = infer_json(rows).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["z", "s", "a", "m"]);
        let DataType::Struct(s) = schema.field(1).data_type() else {
            panic!("s is a struct: {schema:?}")
        };
        assert_eq!(s[0].name(), "q");
        let DataType::List(item) = schema.field(2).data_type() else {
            panic!("a is a list: {schema:?}")
        };
        let DataType::Struct(item) = item.data_type() else {
            panic!("a's items are structs: {schema:?}")
        };
        assert_eq!(
            (item[0].name().as_str(), item[1].name().as_str()),
            ("y", "x")
        );
    }

    #[test]
    fn integers_and_floats_widen_to_floats_and_strings_do_not() {
        let a = infer_json(b"{\"v\": 1, \"l\": [1]}\n").unwrap();
        let b = infer_json(b"{\"v\": 0.5, \"l\": [], \"w\": \"x\"}\n").unwrap();
        let w = widen(&a, &b).unwrap();
        assert_eq!(
            w.field_with_name("v").unwrap().data_type(),
            &DataType::Float64
        );
        assert!(json_fits(&a, &w).is_ok());
        assert!(json_fits(&b, &a).unwrap_err().contains("\"v\""));
        let c = infer_json(b"{\"v\": \"x\"}\n").unwrap();
        assert!(widen(&a, &c).unwrap_err().contains("\"v\" holds Utf8"));
    }
}
