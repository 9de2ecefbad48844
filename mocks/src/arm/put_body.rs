//! The parts of an ARM PUT body the mock reads: the JSON object itself, `location` and `tags`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::error::arm_error;

/// The body as a JSON object, or ARM's 400 `InvalidRequestContent`.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, Box<Response>> {
    let invalid = |detail: String| {
        Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            &format!("The request content was invalid and could not be deserialized: '{detail}'."),
        ))
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("the content must be a JSON object".into())),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// `location`, required for tracked resources (400 `LocationRequired` without it).
pub(crate) fn location(body: &Map<String, Value>) -> Result<String, Box<Response>> {
    match body.get("location").and_then(Value::as_str) {
        Some(l) if !l.trim().is_empty() => Ok(l.to_string()),
        _ => Err(Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        ))),
    }
}

/// `tags`: a map of strings (absent or `null`: none); 400 `InvalidTag` otherwise.
pub(crate) fn tags(body: &Map<String, Value>) -> Result<BTreeMap<String, String>, Box<Response>> {
    let invalid =
        |message: String| Box::new(arm_error(StatusCode::BAD_REQUEST, "InvalidTag", &message));
    match body.get("tags") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(invalid(format!("The value of tag '{k}' must be a string."))),
            })
            .collect(),
        Some(_) => Err(invalid("The tags must be an object of strings.".into())),
    }
}

/// A PUT body's `location` and `tags`, as the resource's ARM attributes (what an identity or a
/// resource group keeps of its body).
pub(crate) fn attributes(body: &[u8]) -> Result<crate::state::ArmAttributes, Box<Response>> {
    let body = object(body)?;
    Ok(crate::state::ArmAttributes {
        location: location(&body)?,
        tags: tags(&body)?,
        ..crate::state::ArmAttributes::default()
    })
}
