//! Building Blob responses: Azure's common headers and XML errors.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use time::OffsetDateTime;
use time::macros::format_description;

use super::xml;

/// Service version reported when the request gave none.
pub const DEFAULT_VERSION: &str = "2021-12-02";

/// RFC 1123 date (`Tue, 01 Jan 2030 00:00:00 GMT`), as in `Date`/`Last-Modified`.
pub fn http_date(t: std::time::SystemTime) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    OffsetDateTime::from(t).format(&fmt).unwrap_or_default()
}

/// Per-request values echoed in every response.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    pub request_id: String,
    pub version: String,
    pub client_request_id: Option<String>,
}

impl ResponseContext {
    /// Adds `x-ms-request-id`, `x-ms-version`, `Date`, `Server` (and `x-ms-client-request-id`).
    pub fn finish(&self, mut resp: Response) -> Response {
        let h = resp.headers_mut();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        };
        put("x-ms-request-id", &self.request_id);
        put("x-ms-version", &self.version);
        put("date", &http_date(std::time::SystemTime::now()));
        put("server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0");
        if let Some(c) = &self.client_request_id {
            put("x-ms-client-request-id", c);
        }
        resp
    }

    /// An XML error with `x-ms-error-code`.
    pub fn error(
        &self,
        status: StatusCode,
        code: &str,
        message: &str,
        detail: Option<&str>,
    ) -> Response {
        let body = xml::error_body(code, message, &self.request_id, &now_iso(), detail);
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if let Ok(v) = HeaderValue::from_str(code) {
            resp.headers_mut().insert("x-ms-error-code", v);
        }
        self.finish(resp)
    }
}

fn now_iso() -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}
