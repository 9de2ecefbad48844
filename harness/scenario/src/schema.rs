//! The JSON Schema of scenario files, for editors (yaml-language-server) and for review.

use crate::model::Scenario;

/// The schema as pretty JSON, exactly as committed in `scenarios/schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema always serialises");
    text.push('\n');
    text
}
