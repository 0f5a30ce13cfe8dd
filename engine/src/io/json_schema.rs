//! The schema of newline-delimited JSON as pyarrow reads it: every row's types in one pass
//! over the text (no parsed values are built), columns and struct fields in the order their
//! keys first appear, a column of integers and floats as floats, a scalar beside lists as a
//! list of it (as arrow-json infers), numbers beside strings an error naming the column (as
//! pyarrow's); and the widening that gives files with mixed values one schema.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The schema of every JSON line in `bytes`; the error names the line or the column.
pub(crate) fn infer_json(bytes: &[u8]) -> Result<Schema, String> {
    let mut root = Node::default();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        Visit(&mut root)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        if !matches!(root.ty, Ty::Object(_)) {
            return Err(format!("line {}: not a JSON object", i + 1));
        }
    }
    match &root.ty {
        Ty::Object(keys) => Ok(Schema::new(fields(keys, "")?)),
        _ => Ok(Schema::empty()),
    }
}

/// Whether the text starts a JSON array (its first character that is not a space is `[`).
pub(crate) fn is_json_array(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// A file that is one JSON array (a list of rows, as `json.dump` writes one) as JSON lines,
/// an element per line, as Ray's fallback reads such a file; `None` for any other text. A
/// line break inside an element becomes a space (JSON strings hold none); the elements are
/// checked as JSON when the lines are read.
pub(crate) fn json_array_lines(bytes: &[u8]) -> Option<Result<Vec<u8>, String>> {
    if !is_json_array(bytes) {
        return None;
    }
    let start = bytes.iter().position(|b| *b == b'[')?;
    let mut out = Vec::with_capacity(bytes.len());
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let mut element = false;
    for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
        if in_str {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'}' if depth == 0 => {
                return Some(Err(format!("an unmatched '}}' at byte {}", i + 1)));
            }
            b']' if depth == 0 => {
                if !bytes[i + 1..].iter().all(u8::is_ascii_whitespace) {
                    return Some(Err(format!("text after the JSON array at byte {}", i + 1)));
                }
                if element {
                    out.push(b'\n');
                }
                return Some(Ok(out));
            }
            b',' if depth == 0 => {
                out.push(b'\n');
                element = false;
            }
            b'\n' | b'\r' | b'\t' | b' ' if depth == 0 => {}
            b'\n' | b'\r' => out.push(b' '),
            _ => {
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth -= 1,
                    _ => {}
                }
                element = true;
                out.push(b);
            }
        }
    }
    Some(Err("the JSON array is not closed".into()))
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

/// What the values seen at one place (a column, a struct field, a list's items) were.
#[derive(Default)]
struct Node {
    ty: Ty,
}

#[derive(Default)]
enum Ty {
    /// Only nulls (or nothing).
    #[default]
    Any,
    /// Scalars: a set of the `BOOL`, `INT`, `FLOAT`, `STR` bits.
    Scalar(u8),
    /// Lists (a scalar beside them is a list of it), their items.
    List(Box<Node>),
    /// Objects, their keys in the order first seen.
    Object(Vec<(String, Node)>),
    /// Objects beside other values: no type holds both.
    Conflict,
}

const BOOL: u8 = 1;
const INT: u8 = 2;
const FLOAT: u8 = 4;
const STR: u8 = 8;

impl Node {
    fn scalar(&mut self, bit: u8) {
        match &mut self.ty {
            Ty::Any => self.ty = Ty::Scalar(bit),
            Ty::Scalar(bits) => *bits |= bit,
            Ty::List(item) => item.scalar(bit),
            Ty::Object(_) | Ty::Conflict => self.ty = Ty::Conflict,
        }
    }

    /// The node a list's items go to (`None`: objects were seen here).
    fn items(&mut self) -> Option<&mut Node> {
        let ty = std::mem::take(&mut self.ty);
        self.ty = match ty {
            Ty::Any => Ty::List(Box::default()),
            Ty::Scalar(bits) => Ty::List(Box::new(Node {
                ty: Ty::Scalar(bits),
            })),
            list @ Ty::List(_) => list,
            Ty::Object(_) | Ty::Conflict => Ty::Conflict,
        };
        match &mut self.ty {
            Ty::List(item) => Some(item),
            _ => None,
        }
    }

    /// The keys an object's values go to (`None`: other values were seen here).
    fn keys(&mut self) -> Option<&mut Vec<(String, Node)>> {
        if matches!(self.ty, Ty::Any) {
            self.ty = Ty::Object(Vec::new());
        }
        if !matches!(self.ty, Ty::Object(_)) {
            self.ty = Ty::Conflict;
        }
        match &mut self.ty {
            Ty::Object(keys) => Some(keys),
            _ => None,
        }
    }

    /// The Arrow type of what was seen; `path` names the place in an error.
    fn data_type(&self, path: &str) -> Result<DataType, String> {
        Ok(match &self.ty {
            Ty::Any => DataType::Null,
            Ty::Scalar(bits) => match *bits {
                BOOL => DataType::Boolean,
                INT => DataType::Int64,
                FLOAT => DataType::Float64,
                b if b == INT | FLOAT => DataType::Float64,
                STR => DataType::Utf8,
                _ => {
                    let kinds: Vec<&str> = [(BOOL, "booleans"), (INT | FLOAT, "numbers")]
                        .into_iter()
                        .chain([(STR, "strings")])
                        .filter(|(b, _)| bits & b != 0)
                        .map(|(_, name)| name)
                        .collect();
                    return Err(format!("column {path:?} holds {}", kinds.join(" and ")));
                }
            },
            Ty::List(item) => {
                DataType::List(Arc::new(Field::new_list_field(item.data_type(path)?, true)))
            }
            Ty::Object(keys) => DataType::Struct(fields(keys, path)?.into()),
            Ty::Conflict => {
                return Err(format!("column {path:?} holds objects and other values"));
            }
        })
    }
}

/// The fields of an object's keys, in the order first seen (`path`: the object's place).
fn fields(keys: &[(String, Node)], path: &str) -> Result<Vec<Field>, String> {
    keys.iter()
        .map(|(k, node)| {
            let path = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            Ok(Field::new(k, node.data_type(&path)?, true))
        })
        .collect()
}

/// Records one JSON value into a [`Node`].
struct Visit<'a>(&'a mut Node);

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
        let Some(keys) = self.0.keys() else {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(());
        };
        // Rows usually repeat their keys in one order: look at the next one first.
        let mut next = 0;
        while let Some(i) = map.next_key_seed(Key { keys, next })? {
            next = i + 1;
            map.next_value_seed(Visit(&mut keys[i].1))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.0.items() {
            Some(item) => while seq.next_element_seed(Visit(&mut *item))?.is_some() {},
            None => while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {},
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.scalar(BOOL);
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.scalar(INT);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        // Past i64 an integer is a float, as arrow-json reads it.
        self.0
            .scalar(if i64::try_from(v).is_ok() { INT } else { FLOAT });
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.scalar(FLOAT);
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.0.scalar(STR);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Finds (or adds) an object key's index among `keys`, trying `next` first; allocates only
/// for a key not seen before.
struct Key<'a> {
    keys: &'a mut Vec<(String, Node)>,
    next: usize,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<usize, E> {
        if self.keys.get(self.next).is_some_and(|(k, _)| k == key) {
            return Ok(self.next);
        }
        if let Some(i) = self.keys.iter().position(|(k, _)| k == key) {
            return Ok(i);
        }
        self.keys.push((key.to_string(), Node::default()));
        Ok(self.keys.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_array_file_reads_as_a_line_per_element() {
        let text = br#"  [
  {"a": 1, "s": "x, ] } [ \" y"},
  {"a": [2,
         3], "n": {"b": null}}
]
"#;
        let lines = json_array_lines(text).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            "{\"a\": 1, \"s\": \"x, ] } [ \\\" y\"}\n{\"a\": [2,          3], \"n\": {\"b\": null}}\n"
        );
        assert_eq!(json_array_lines(b"[]").unwrap().unwrap(), b"");
        assert!(json_array_lines(b"{\"a\": 1}\n").is_none());
        let err = json_array_lines(b"[{\"a\": 1}] x").unwrap().unwrap_err();
        assert!(err.contains("text after the JSON array"), "{err}");
        let err = json_array_lines(b"[{\"a\": 1}").unwrap().unwrap_err();
        assert!(err.contains("not closed"), "{err}");
    }

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

    /// `t` with every struct's fields ordered by name (arrow-json orders them otherwise).
    fn by_name(t: &DataType) -> DataType {
        match t {
            DataType::Struct(fs) => {
                let mut fs: Vec<Field> = fs
                    .iter()
                    .map(|f| f.as_ref().clone().with_data_type(by_name(f.data_type())))
                    .collect();
                fs.sort_by(|a, b| a.name().cmp(b.name()));
                DataType::Struct(fs.into())
            }
            DataType::List(f) => DataType::List(Arc::new(
                f.as_ref().clone().with_data_type(by_name(f.data_type())),
            )),
            t => t.clone(),
        }
    }

    #[test]
    fn the_types_are_arrow_jsons_where_it_does_not_fall_back_to_strings() {
        let cases: [&[u8]; 7] = [
            b"{\"a\": 1, \"b\": 2.5, \"c\": \"x\", \"d\": true, \"e\": null}\n",
            b"{\"a\": 1}\n{\"a\": 2.5}\n\n{\"a\": null}\n",
            b"{\"l\": [1, 2]}\n{\"l\": 3}\n{\"l\": []}\n{\"l\": [0.5]}\n",
            b"{\"s\": {\"y\": 1, \"x\": [true]}}\n{\"s\": {\"z\": \"q\"}}\n{\"s\": null}\n",
            b"{\"ls\": [{\"b\": 1}, {\"a\": [1.5]}]}\n{\"ls\": null}\n",
            b"{\"n\": [[1], [2, 3]]}\n{\"n\": [[]]}\n",
            b"{\"big\": 18446744073709551615, \"neg\": -9223372036854775808}\n",
        ];
        for rows in cases {
            let ours = infer_json(rows).unwrap();
            let theirs = arrow::json::reader::infer_json_schema(std::io::Cursor::new(rows), None)
                .unwrap()
                .0;
            assert_eq!(ours.fields().len(), theirs.fields().len());
            for f in theirs.fields() {
                let o = ours.field_with_name(f.name()).unwrap();
                assert_eq!(by_name(o.data_type()), by_name(f.data_type()), "{f:?}");
            }
        }
    }

    #[test]
    fn values_no_type_holds_are_errors_naming_the_column_or_line() {
        let err = |rows: &[u8]| infer_json(rows).unwrap_err();
        assert_eq!(
            err(b"{\"m\": 1}\n{\"m\": \"x\"}\n"),
            "column \"m\" holds numbers and strings"
        );
        assert_eq!(
            err(b"{\"s\": {\"f\": true}}\n{\"s\": {\"f\": 2}}\n"),
            "column \"s.f\" holds booleans and numbers"
        );
        assert_eq!(
            err(b"{\"o\": {\"x\": 1}}\n{\"o\": 3}\n"),
            "column \"o\" holds objects and other values"
        );
        assert!(err(b"{\"a\": 1}\n{\"a\": \n").starts_with("line 2: "));
        assert_eq!(err(b"{\"a\": 1}\n[1, 2]\n"), "line 2: not a JSON object");
        assert!(err(b"{\"a\": 1} {\"a\": 2}\n").starts_with("line 1: trailing characters"));
        assert_eq!(infer_json(b"\n  \n").unwrap(), Schema::empty());
    }
}
