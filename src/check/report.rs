//! Findings -> text, JSON or GitHub workflow annotations. Pure: returns the text to print.

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The cluster would refuse the change.
    Error,
    /// Allowed, with a warning.
    Warning,
    /// For information: what the cluster would add, what was skipped.
    Notice,
}

/// One thing to say about one object (or file).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub severity: Severity,
    /// `CREATE`, `UPDATE`, `DELETE`; empty for notes about files.
    pub operation: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

/// What was looked at.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub files: usize,
    pub objects: usize,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub refused: usize,
    pub warnings: usize,
    pub notices: usize,
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
    Github,
}

/// Counts the findings into `summary`: `refused` counts objects, not messages.
pub fn count(findings: &[Finding], summary: &mut Summary) {
    let mut refused: Vec<(&str, &str, &str)> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.kind.as_str(), f.namespace.as_str(), f.name.as_str()))
        .collect();
    refused.sort_unstable();
    refused.dedup();
    summary.refused = refused.len();
    let of = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    summary.warnings = of(Severity::Warning);
    summary.notices = of(Severity::Notice);
}

/// The whole report in `format`.
pub fn render(format: Output, findings: &[Finding], summary: &Summary) -> String {
    match format {
        Output::Text => text(findings, summary),
        Output::Json => json(findings, summary),
        Output::Github => github(findings, summary),
    }
}

fn object(f: &Finding) -> String {
    match (f.kind.as_str(), f.namespace.as_str()) {
        ("", _) => String::new(),
        (kind, "") => format!(" {kind} {}:", f.name),
        (kind, ns) => format!(" {kind} {ns}/{}:", f.name),
    }
}

fn label(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "refused",
        Severity::Warning => "warning",
        Severity::Notice => "note",
    }
}

/// `path:line: KIND namespace/name: refused|warning|note: message`, then the summary.
fn text(findings: &[Finding], summary: &Summary) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}:{}:{} {}: {}\n",
            f.file,
            f.line,
            object(f),
            label(f.severity),
            f.message
        ));
    }
    out.push_str(&summary_line(summary));
    out.push('\n');
    out
}

/// One line: what changed and what was found.
pub fn summary_line(s: &Summary) -> String {
    let verdict = if s.refused == 0 {
        "nothing refused"
    } else {
        "REFUSED"
    };
    format!(
        "bindguard check: {} objects in {} files; {} created, {} updated, {} deleted; {} refused, {} warnings, {} notes: {verdict}",
        s.objects, s.files, s.created, s.updated, s.deleted, s.refused, s.warnings, s.notices
    )
}

fn json(findings: &[Finding], summary: &Summary) -> String {
    let report = serde_json::json!({"findings": findings, "summary": summary});
    format!(
        "{}\n",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    )
}

/// GitHub workflow commands: `::error file=F,line=L,title=T::message`.
fn github(findings: &[Finding], summary: &Summary) -> String {
    let mut out = String::new();
    for f in findings {
        let command = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        };
        let title = format!("bindguard{}", object(f).trim_end_matches(':'));
        out.push_str(&format!(
            "::{command} file={},line={},title={}::{}\n",
            escape_property(&f.file),
            f.line,
            escape_property(&title),
            escape_data(&f.message)
        ));
    }
    out.push_str(&summary_line(summary));
    out.push('\n');
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity, message: &str) -> Finding {
        Finding {
            file: "a,b.yaml".into(),
            line: 3,
            severity,
            operation: "UPDATE".into(),
            kind: "ResourceReleaseBinding".into(),
            namespace: "default".into(),
            name: "b".into(),
            message: message.into(),
        }
    }

    #[test]
    fn text_lines_name_file_line_and_object() {
        let out = render(
            Output::Text,
            &[finding(Severity::Error, "no")],
            &Summary::default(),
        );
        assert!(
            out.starts_with("a,b.yaml:3: ResourceReleaseBinding default/b: refused: no\n"),
            "{out}"
        );
    }

    #[test]
    fn github_annotations_are_escaped() {
        let out = render(
            Output::Github,
            &[finding(Severity::Warning, "50%\nnext")],
            &Summary::default(),
        );
        let first = out.lines().next().unwrap();
        assert_eq!(
            first,
            "::warning file=a%2Cb.yaml,line=3,title=bindguard ResourceReleaseBinding default/b::50%25%0Anext"
        );
    }

    #[test]
    fn refusals_count_objects() {
        let mut summary = Summary::default();
        count(
            &[
                finding(Severity::Error, "a"),
                finding(Severity::Error, "b"),
                finding(Severity::Notice, "c"),
            ],
            &mut summary,
        );
        assert_eq!(
            (summary.refused, summary.warnings, summary.notices),
            (1, 0, 1)
        );
    }
}
