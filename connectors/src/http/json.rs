//! JSON values that keep the order of object keys as the server sent them, so that a run without
//! named columns gets the first record's keys in their order (`serde_json::Value` sorts them,
//! and its `preserve_order` feature would change every crate of the workspace).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A parsed JSON value; objects keep their keys in order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// What the value is, for messages: "an object", "a string", …
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// The value as a text cell: strings as they are, numbers and booleans in their JSON form,
    /// objects and arrays as compact JSON, `null` as no value.
    pub(super) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Json::Null => None,
            Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Json::Number(n) => Some(Cow::Owned(n.to_string())),
            Json::String(s) => Some(Cow::Borrowed(s)),
            Json::Array(_) | Json::Object(_) => Some(Cow::Owned(self.compact())),
        }
    }

    /// The value as compact JSON text.
    pub(super) fn compact(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The value a JSON pointer (RFC 6901) designates; `""` is the value itself. When an object
    /// repeats a key, the last one counts, as in `serde_json`.
    pub(super) fn pointer_mut(&mut self, pointer: &str) -> Option<&mut Json> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut target = self;
        for token in pointer.strip_prefix('/')?.split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            target = match target {
                Json::Object(pairs) => pairs.iter_mut().rev().find(|(k, _)| *k == token).map(|(_, v)| v)?,
                Json::Array(items) => {
                    if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
                        return None;
                    }
                    items.get_mut(token.parse::<usize>().ok()?)?
                }
                _ => return None,
            };
        }
        Some(target)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        // JSON text has no NaN or infinity, so this is always a number.
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        Json::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(256));
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            pairs.push((key, value));
        }
        Ok(Json::Object(pairs))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (key, value) in pairs {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_renders_cells() {
        let mut value: Json =
            serde_json::from_str(r#"{"zeta": 1, "alpha": [1, {"b": null, "a": "x"}], "a/b": {"~": 2.5}}"#).unwrap();
        let Json::Object(pairs) = &value else {
            panic!("an object")
        };
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["zeta", "alpha", "a/b"]);
        assert_eq!(
            value.compact(),
            r#"{"zeta":1,"alpha":[1,{"b":null,"a":"x"}],"a/b":{"~":2.5}}"#
        );
        assert_eq!(value.pointer_mut("/alpha/1/a").unwrap().text().unwrap(), "x");
        assert_eq!(value.pointer_mut("/a~1b/~0").unwrap().text().unwrap(), "2.5");
        assert!(value.pointer_mut("/alpha/01").is_none());
        assert!(value.pointer_mut("/alpha/1/b").unwrap().text().is_none());
        assert!(value.pointer_mut("/missing").is_none());
        assert!(value.pointer_mut("zeta").is_none());
    }
}
