//! Where a value breaks its schema and what is wrong, as few causes and a short message: at most
//! [`MAX_CAUSES`] violations are kept, the rest are only counted.

use super::{SchemaError, guarded};
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::Location;
use jsonschema::{ValidationError, Validator};
use serde_json::{Value, json};
use std::fmt::{self, Write as _};

/// Violations kept in a [`Report`]; the API server shows every cause, so they stay few.
pub const MAX_CAUSES: usize = 20;
/// A violation's message is cut to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 300;
/// A rendered field path is cut to this many characters.
pub const MAX_FIELD_CHARS: usize = 512;
/// [`Report::summary`] stops listing violations past this many characters.
pub const MAX_SUMMARY_CHARS: usize = 3_000;

/// One step of a [`Violation`]'s path inside the validated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// An array index (`Display` renders it as its decimal string).
    Index(usize),
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Key(key) => f.write_str(key),
            Segment::Index(index) => write!(f, "{index}"),
        }
    }
}

/// A schema violation: where in the value (`segments`, outermost first) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub segments: Vec<Segment>,
    pub message: String,
}

impl Violation {
    /// `prefix` joined with the segments: object keys as `.key`, array indexes as `[i]`;
    /// keys that are not plain identifiers ([A-Za-z0-9_-]) as `["weird key"]`. Cut to
    /// [`MAX_FIELD_CHARS`].
    pub fn field(&self, prefix: &str) -> String {
        let mut field = prefix.to_owned();
        for segment in &self.segments {
            if field.len() > MAX_FIELD_CHARS {
                break;
            }
            match segment {
                Segment::Index(index) => {
                    let _ = write!(field, "[{index}]");
                }
                Segment::Key(key) if is_plain_key(key) => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                Segment::Key(key) => {
                    let _ = write!(field, "[{}]", Value::String(key.clone()));
                }
            }
        }
        shorten(field, MAX_FIELD_CHARS)
    }
}

/// The violations of one value: the first [`MAX_CAUSES`], and how many there are in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub total: usize,
}

impl Report {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// One line per kept violation (`field: message`), then `... and N more` when some were
    /// only counted.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.field(prefix), v.message))
            .collect();
        lines.extend(self.more(lines.len()));
        lines
    }

    /// The violations as one `; `-separated text of at most about [`MAX_SUMMARY_CHARS`].
    pub fn summary(&self, prefix: &str) -> String {
        let mut summary = String::new();
        let mut listed = 0;
        for line in self.lines(prefix).into_iter().take(self.violations.len()) {
            if listed > 0 && summary.len() + line.len() > MAX_SUMMARY_CHARS {
                break;
            }
            if listed > 0 {
                summary.push_str("; ");
            }
            summary.push_str(&line);
            listed += 1;
        }
        if let Some(more) = self.more(listed) {
            summary.push_str("; ");
            summary.push_str(&more);
        }
        summary
    }

    fn more(&self, listed: usize) -> Option<String> {
        let rest = self.total.saturating_sub(listed);
        (rest > 0).then(|| format!("... and {} more", grouped(rest)))
    }
}

/// Validates `instance`, keeping the first [`MAX_CAUSES`] violations and counting the rest.
pub fn collect(validator: &Validator, instance: &Value) -> Result<Report, SchemaError> {
    guarded(|| {
        let mut report = Report::default();
        for error in validator.iter_errors(instance) {
            let room = MAX_CAUSES - report.violations.len();
            report.total += count(&error);
            let kept = violations(instance, &error, room);
            report.violations.extend(kept);
        }
        report
    })
}

/// How many violations one error stands for.
fn count(error: &ValidationError<'_>) -> usize {
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected.len(),
        _ => 1,
    }
}

/// At most `room` violations that `error` stands for.
fn violations(instance: &Value, error: &ValidationError<'_>, room: usize) -> Vec<Violation> {
    if room == 0 {
        return Vec::new();
    }
    let segments = segments_at(instance, error.instance_path());
    let child = |name: String, message: String| {
        let mut segments = segments.clone();
        segments.push(Segment::Key(name));
        Violation { segments, message }
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            let message = format!("required property {property} is missing");
            vec![child(name, shorten(message, MAX_MESSAGE_CHARS))]
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .take(room)
            .map(|name| {
                let message = format!("unknown property {} is not allowed", json!(name));
                child(name.clone(), shorten(message, MAX_MESSAGE_CHARS))
            })
            .collect(),
        _ => vec![Violation {
            segments,
            message: shorten(error.to_string(), MAX_MESSAGE_CHARS),
        }],
    }
}

/// Turns a JSON pointer into segments, using `instance` to tell array indexes from object keys
/// (an object key `"0"` stays a key).
fn segments_at(instance: &Value, location: &Location) -> Vec<Segment> {
    let mut node = Some(instance);
    location
        .as_str()
        .split('/')
        .skip(1)
        .map(|raw| {
            let token = raw.replace("~1", "/").replace("~0", "~");
            let (segment, next) = match node {
                Some(Value::Array(items)) => match token.parse::<usize>() {
                    Ok(index) => (Segment::Index(index), items.get(index)),
                    Err(_) => (Segment::Key(token), None),
                },
                Some(Value::Object(fields)) => {
                    let next = fields.get(token.as_str());
                    (Segment::Key(token), next)
                }
                _ => (Segment::Key(token), None),
            };
            node = next;
            segment
        })
        .collect()
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `text` cut to `limit` characters, with `…` when something was cut.
pub fn shorten(mut text: String, limit: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(limit) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// `149980` as `149,980`.
fn grouped(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "spec.resourceTypeEnvironmentConfigs";

    #[test]
    fn field_renders_keys_and_indexes() {
        let key = |k: &str| Segment::Key(k.to_owned());
        let cases = [
            (vec![], PREFIX.to_owned()),
            (vec![key("memory")], format!("{PREFIX}.memory")),
            (
                vec![key("replicas"), Segment::Index(0)],
                format!("{PREFIX}.replicas[0]"),
            ),
            (
                vec![key("a b"), key("x_y-1")],
                format!("{PREFIX}[\"a b\"].x_y-1"),
            ),
            (vec![key("")], format!("{PREFIX}[\"\"]")),
            (
                vec![key("say \"hi\"")],
                format!("{PREFIX}[\"say \\\"hi\\\"\"]"),
            ),
            (vec![key("dotted.key")], format!("{PREFIX}[\"dotted.key\"]")),
        ];
        for (segments, expected) in cases {
            let violation = Violation {
                segments,
                message: String::new(),
            };
            assert_eq!(violation.field(PREFIX), expected);
        }
        let bare = Violation {
            segments: vec![key("a"), Segment::Index(2)],
            message: String::new(),
        };
        assert_eq!(bare.field(""), "a[2]");
    }

    fn report(schema: Value, value: &Value) -> Report {
        let compiled = crate::schema::EnvConfigSchema::compile(&schema).expect("compiles");
        compiled.check(value).expect("checked")
    }

    #[test]
    fn many_violations_are_capped_and_counted() {
        let items: Vec<Value> = (0..150_000).map(|i| json!(format!("item {i}"))).collect();
        let schema = json!({"properties":{"list":{"type":"array","items":{"type":"integer"}}}});
        let report = report(schema, &json!({ "list": items }));
        assert_eq!(report.total, 150_000);
        assert_eq!(report.violations.len(), MAX_CAUSES);
        let summary = report.summary(PREFIX);
        assert!(
            summary.len() <= MAX_SUMMARY_CHARS + 1_000,
            "{}",
            summary.len()
        );
        assert!(summary.ends_with("... and 149,980 more"), "{summary}");
        let lines = report.lines(PREFIX);
        assert_eq!(lines.len(), MAX_CAUSES + 1);
        assert_eq!(
            lines[0],
            format!(r#"{PREFIX}.list[0]: "item 0" is not of type "integer""#)
        );
    }

    #[test]
    fn many_unknown_keys_are_capped_and_counted() {
        let fields: serde_json::Map<String, Value> =
            (0..50_000).map(|i| (format!("k{i}"), json!(i))).collect();
        let report = report(
            json!({"properties": {"known": {}}, "additionalProperties": false}),
            &Value::Object(fields),
        );
        assert_eq!(report.total, 50_000);
        assert_eq!(report.violations.len(), MAX_CAUSES);
        assert!(report.summary("").ends_with("... and 49,980 more"));
    }

    #[test]
    fn long_lines_keep_the_summary_short() {
        let long_key = "k".repeat(2_000);
        let fields: serde_json::Map<String, Value> = (0..30)
            .map(|i| (format!("{long_key}{i}"), json!(1)))
            .collect();
        let report = report(
            json!({"properties": {"known": {}}, "additionalProperties": false}),
            &Value::Object(fields),
        );
        let summary = report.summary(PREFIX);
        assert!(
            summary.len() < MAX_SUMMARY_CHARS + 1_000,
            "{}",
            summary.len()
        );
        assert!(summary.contains("more"), "{summary}");
        assert!(
            report
                .violations
                .iter()
                .all(|v| v.field(PREFIX).chars().count() <= MAX_FIELD_CHARS + 1)
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (149_980, "149,980"),
            (1_234_567, "1,234,567"),
        ];
        for (number, text) in cases {
            assert_eq!(grouped(number), text);
        }
    }
}
