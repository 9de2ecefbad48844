//! `${...}` references inside scenario strings: parsing, checking against what a scenario
//! declares, and rendering with run-time values.

use std::fmt;

/// What a reference points at: the part before the first dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    Identities,
    ServicePrincipals,
    StorageAccounts,
    Pods,
    Namespaces,
    Nodes,
    Cloud,
    Scenario,
}

impl Root {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "identities" => Root::Identities,
            "servicePrincipals" => Root::ServicePrincipals,
            "storageAccounts" => Root::StorageAccounts,
            "pods" => Root::Pods,
            "namespaces" => Root::Namespaces,
            "nodes" => Root::Nodes,
            "cloud" => Root::Cloud,
            "scenario" => Root::Scenario,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Root::Identities => "identities",
            Root::ServicePrincipals => "servicePrincipals",
            Root::StorageAccounts => "storageAccounts",
            Root::Pods => "pods",
            Root::Namespaces => "namespaces",
            Root::Nodes => "nodes",
            Root::Cloud => "cloud",
            Root::Scenario => "scenario",
        }
    }

    /// Whether the reference names an object (`pods.<name>.ip`) or not (`cloud.tenantId`).
    pub fn takes_name(self) -> bool {
        !matches!(self, Root::Cloud | Root::Scenario)
    }

    /// The fields this root offers.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Root::Identities => &["clientId", "principalId", "resourceId", "name"],
            Root::ServicePrincipals => &["clientId", "objectId"],
            Root::StorageAccounts => &["name", "url"],
            Root::Pods => &["ip", "name", "namespace", "node"],
            Root::Namespaces => &["name"],
            Root::Nodes => &["name", "ip"],
            Root::Cloud => &[
                "tenantId",
                "subscriptionId",
                "clusterIdentityClientId",
                "clusterIdentityResourceId",
                "clusterIdentityPrincipalId",
            ],
            Root::Scenario => &["name", "namespace", "runId", "mode", "micNamespace"],
        }
    }

    pub const ALL: [Root; 8] = [
        Root::Identities,
        Root::ServicePrincipals,
        Root::StorageAccounts,
        Root::Pods,
        Root::Namespaces,
        Root::Nodes,
        Root::Cloud,
        Root::Scenario,
    ];
}

/// A parsed `${root.name.field}` or `${root.field}` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub root: Root,
    pub name: Option<String>,
    pub field: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "${{{}.{}.{}}}", self.root.as_str(), name, self.field),
            None => write!(f, "${{{}.{}}}", self.root.as_str(), self.field),
        }
    }
}

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Ref(Reference),
}

/// Why a template could not be parsed; `offset` is the byte offset of the problem in the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub help: String,
}

/// Splits a string into text and references. `$${` stands for a literal `${`.
pub fn parse(input: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = input;
    let mut offset = 0usize;
    while let Some(pos) = rest.find('$') {
        text.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(stripped) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = stripped;
            offset += pos + 3;
            continue;
        }
        if !after.starts_with("${") {
            text.push('$');
            rest = &after[1..];
            offset += pos + 1;
            continue;
        }
        let start = offset + pos;
        let Some(end) = after.find('}') else {
            return Err(TemplateError {
                offset: start,
                message: "unterminated reference: `${` without a closing `}`".into(),
                help:
                    "close it, e.g. `${identities.reader.clientId}`; write `$${` for a literal `${`"
                        .into(),
            });
        };
        let inner = &after[2..end];
        let reference = parse_reference(inner).map_err(|(message, help)| TemplateError {
            offset: start,
            message,
            help,
        })?;
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Ref(reference));
        rest = &after[end + 1..];
        offset += pos + end + 1;
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn roots_list() -> String {
    Root::ALL
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_reference(inner: &str) -> Result<Reference, (String, String)> {
    let parts: Vec<&str> = inner.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err((
            format!("`${{{inner}}}` is not a reference"),
            "references look like `${identities.<name>.clientId}` or `${cloud.tenantId}`".into(),
        ));
    }
    let Some(root) = Root::parse(parts[0]) else {
        return Err((
            format!("unknown reference root `{}`", parts[0]),
            format!("a reference starts with one of: {}", roots_list()),
        ));
    };
    let (name, field) = match (root.takes_name(), parts.len()) {
        (true, 3) => (Some(parts[1].to_string()), parts[2]),
        (false, 2) => (None, parts[1]),
        (true, _) => {
            return Err((
                format!("`${{{inner}}}` needs a name and a field"),
                format!(
                    "write `${{{}.<name>.<field>}}` with a field among: {}",
                    root.as_str(),
                    root.fields().join(", ")
                ),
            ));
        }
        (false, _) => {
            return Err((
                format!("`${{{inner}}}` takes only a field"),
                format!(
                    "write `${{{}.<field>}}` with a field among: {}",
                    root.as_str(),
                    root.fields().join(", ")
                ),
            ));
        }
    };
    if !root.fields().contains(&field) {
        return Err((
            format!("`{}` has no field `{field}`", root.as_str()),
            format!(
                "fields of `{}`: {}",
                root.as_str(),
                root.fields().join(", ")
            ),
        ));
    }
    Ok(Reference {
        root,
        name,
        field: field.to_string(),
    })
}

/// Supplies run-time values for references.
pub trait Resolve {
    /// The value, or `None` when it is not known (yet).
    fn resolve(&self, reference: &Reference) -> Option<String>;
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Parse(String),
    #[error("no value for {0} at this point of the run")]
    Unresolved(String),
}

/// Renders a template string with run-time values.
pub fn render(input: &str, resolver: &dyn Resolve) -> Result<String, RenderError> {
    let pieces = parse(input).map_err(|e| RenderError::Parse(e.message))?;
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(r) => match resolver.resolve(&r) {
                Some(v) => out.push_str(&v),
                None => return Err(RenderError::Unresolved(r.to_string())),
            },
        }
    }
    Ok(out)
}

/// Renders every string inside a JSON value.
pub fn render_json(
    value: &serde_json::Value,
    resolver: &dyn Resolve,
) -> Result<serde_json::Value, RenderError> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(render(s, resolver)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_json(v, resolver))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((render(k, resolver)?, render_json(v, resolver)?)))
                .collect::<Result<_, RenderError>>()?,
        ),
        other => other.clone(),
    })
}

/// Every string (keys included) inside a JSON value, for checking the references it holds.
pub fn json_strings(value: &serde_json::Value) -> Vec<&str> {
    use serde_json::Value;
    let mut out = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k);
                    walk(v, out);
                }
            }
            _ => {}
        }
    }
    walk(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Resolve for Fixed {
        fn resolve(&self, r: &Reference) -> Option<String> {
            (r.field == "clientId").then(|| "1234".to_string())
        }
    }

    #[test]
    fn parses_text_and_references() {
        let pieces = parse("id=${identities.reader.clientId}&x=$${not} $5").unwrap();
        assert_eq!(
            pieces,
            vec![
                Piece::Text("id=".into()),
                Piece::Ref(Reference {
                    root: Root::Identities,
                    name: Some("reader".into()),
                    field: "clientId".into()
                }),
                Piece::Text("&x=${not} $5".into()),
            ]
        );
    }

    #[test]
    fn rejects_bad_references_with_offsets() {
        let e = parse("ab ${identity.reader.clientId}").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("unknown reference root"));
        assert!(parse("${cloud.tenantId.x}").is_err());
        assert!(parse("${cloud.clusterIdentityClientId}").is_ok());
        assert!(parse("${scenario.micNamespace}").is_ok());
        assert!(
            parse("${pods.app.colour}")
                .unwrap_err()
                .message
                .contains("no field")
        );
        assert!(
            parse("${pods.app.ip")
                .unwrap_err()
                .message
                .contains("unterminated")
        );
    }

    #[test]
    fn renders() {
        assert_eq!(
            render("x ${identities.a.clientId}", &Fixed).unwrap(),
            "x 1234"
        );
        assert!(matches!(
            render("${pods.a.ip}", &Fixed),
            Err(RenderError::Unresolved(_))
        ));
    }
}
