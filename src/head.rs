//! The few fields of a review that logs and refusals name: taken from the judged review, or,
//! when it could not be judged, read from the body without building its objects (strings are
//! kept; everything else, the objects, `userInfo.groups`, a value of the wrong type, is skipped
//! where it stands).

use crate::admission::AdmissionRequest;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Default, Clone)]
pub struct Head {
    pub uid: String,
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
    pub user: String,
}

impl Head {
    /// The head of `body`: empty fields for what is absent or not a string; all empty when the
    /// body is not JSON (judging says why).
    pub fn peek(body: &[u8]) -> Head {
        let mut head = Head::default();
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let read = Fill {
            head: &mut head,
            part: Part::Envelope,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
        match read {
            Ok(()) => head,
            Err(_) => Head::default(),
        }
    }

    /// The head of a review already decoded.
    pub fn of(request: &AdmissionRequest) -> Head {
        Head {
            uid: request.uid.clone(),
            group: request.kind.group.clone(),
            kind: request.kind.kind.clone(),
            namespace: request.namespace().to_owned(),
            name: request.object_name().to_owned(),
            operation: request.operation.as_str().to_owned(),
            user: request.user_info.username.clone(),
        }
    }

    /// The span every log line about this review is written in.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "review",
            uid = %self.uid,
            kind = %self.kind,
            namespace = %self.namespace,
            object_name = %self.name,
            operation = %self.operation,
        )
    }
}

/// Which object of the review is being read.
#[derive(Clone, Copy)]
enum Part {
    Envelope,
    Request,
    Kind,
    User,
}

/// The keys the head reads, in any of the objects; every other key is [`Field::Other`].
#[derive(Clone, Copy)]
enum Field {
    Request,
    Uid,
    Kind,
    Group,
    Namespace,
    Name,
    Operation,
    UserInfo,
    Username,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
        Ok(match key {
            "request" => Field::Request,
            "uid" => Field::Uid,
            "kind" => Field::Kind,
            "group" => Field::Group,
            "namespace" => Field::Namespace,
            "name" => Field::Name,
            "operation" => Field::Operation,
            "userInfo" => Field::UserInfo,
            "username" => Field::Username,
            _ => Field::Other,
        })
    }
}

/// Reads one object of the review into the head; a value that is not an object is skipped.
struct Fill<'h> {
    head: &'h mut Head,
    part: Part,
}

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let head = self.head;
        while let Some(field) = map.next_key::<Field>()? {
            let text = match (self.part, field) {
                (Part::Envelope, Field::Request) => {
                    map.next_value_seed(Fill {
                        head: &mut *head,
                        part: Part::Request,
                    })?;
                    continue;
                }
                // A key given twice counts once, the last time, as when the review is judged.
                (Part::Request, Field::Kind | Field::UserInfo) => {
                    let part = match field {
                        Field::Kind => {
                            head.group.clear();
                            head.kind.clear();
                            Part::Kind
                        }
                        _ => {
                            head.user.clear();
                            Part::User
                        }
                    };
                    map.next_value_seed(Fill {
                        head: &mut *head,
                        part,
                    })?;
                    continue;
                }
                (Part::Request, Field::Uid) => &mut head.uid,
                (Part::Request, Field::Namespace) => &mut head.namespace,
                (Part::Request, Field::Name) => &mut head.name,
                (Part::Request, Field::Operation) => &mut head.operation,
                (Part::Kind, Field::Group) => &mut head.group,
                (Part::Kind, Field::Kind) => &mut head.kind,
                (Part::User, Field::Username) => &mut head.user,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *text = map.next_value::<Text>()?.0;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A string value as it is; any other value as empty, skipped.
struct Text(String);

impl<'de> de::Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_owned())
    }
    fn visit_string<E: de::Error>(self, text: String) -> Result<String, E> {
        Ok(text)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(String::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(String::new())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_read_and_anything_else_tolerated() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","request":{"uid":"u1",
            "kind":{"group":"g","version":"v1","kind":"K"},"namespace":"ns","name":"n",
            "operation":"CREATE","userInfo":{"username":"alice","groups":["a","b"],"extra":{"x":["y"]}},
            "object":{"kind":"Inner","name":"not-this","deep":[[[1]]]},"oldObject":null}}"#;
        let head = Head::peek(body);
        let read = [
            &head.uid,
            &head.group,
            &head.kind,
            &head.namespace,
            &head.name,
            &head.operation,
            &head.user,
        ];
        assert_eq!(read, ["u1", "g", "K", "ns", "n", "CREATE", "alice"]);
        let odd =
            br#"{"request":{"uid":7,"kind":"K","name":{"a":1},"namespace":"ns","userInfo":[1]}}"#;
        let head = Head::peek(odd);
        assert_eq!(
            (head.uid.as_str(), head.kind.as_str(), head.name.as_str()),
            ("", "", "")
        );
        assert_eq!(
            head.namespace, "ns",
            "the fields that are strings are still read"
        );
        let twice = br#"{"request":{"kind":{"group":"","kind":"ConfigMap"},
            "kind":["openchoreo.dev","v1","ResourceReleaseBinding"],"operation":"CREATE"}}"#;
        let head = Head::peek(twice);
        assert_eq!(
            (head.group.as_str(), head.kind.as_str()),
            ("", ""),
            "the last kind counts"
        );
        for bad in [
            &b"not json"[..],
            b"[]",
            b"\xff",
            b"{\"request\":{\"uid\":\"u\"",
            b"7",
            b"{\"request\":{\"uid\":\"u\"}} trailing",
        ] {
            assert_eq!(Head::peek(bad).uid, "");
        }
    }
}
