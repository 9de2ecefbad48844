//! Parsing and validating IMDS query strings (api-version, resource, identity selectors).

/// api-versions IMDS accepts.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
];

/// Listed in api-version errors.
pub const NEWEST_VERSIONS: &[&str] = &["2023-07-01", "2021-12-13", "2021-11-15"];

/// First api-version with the identity category.
const FIRST_IDENTITY_VERSION: &str = "2018-02-01";

/// A parsed IMDS query: the pairs in order and whether any key repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImdsQuery {
    /// Decoded pairs.
    pub pairs: Vec<(String, String)>,
    /// Whether some key occurs more than once (IMDS rejects such requests).
    pub has_duplicates: bool,
}

impl ImdsQuery {
    /// Parses a raw query string; never fails, invalid escapes are decoded lossily.
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let mut seen = std::collections::HashSet::new();
        let has_duplicates = pairs.iter().any(|(k, _)| !seen.insert(k.as_str()));
        Self {
            pairs,
            has_duplicates,
        }
    }

    /// Value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How the api-version check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersionCheck {
    /// Acceptable.
    Ok,
    /// Not given.
    Missing,
    /// Unknown, or too old for the requested category.
    Unsupported,
}

/// Checks `api-version`; identity calls need 2018-02-01 or later.
pub fn check_api_version(q: &ImdsQuery, identity: bool) -> ApiVersionCheck {
    match q.get("api-version") {
        None | Some("") => ApiVersionCheck::Missing,
        Some(v) if !SUPPORTED_VERSIONS.contains(&v) => ApiVersionCheck::Unsupported,
        Some(v) if identity && v < FIRST_IDENTITY_VERSION => ApiVersionCheck::Unsupported,
        Some(_) => ApiVersionCheck::Ok,
    }
}

/// The identity a token request selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// None given: system-assigned (or the only user-assigned).
    Default,
    /// `client_id`.
    ClientId(String),
    /// `object_id`.
    ObjectId(String),
    /// `msi_res_id` or `mi_res_id`.
    ResourceId(String),
}

/// Reads the identity selector; more than one kind given is an error.
pub fn selector(q: &ImdsQuery) -> Result<Selector, &'static str> {
    let non_empty = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    let mut found = Vec::new();
    if let Some(c) = non_empty("client_id") {
        found.push(Selector::ClientId(c));
    }
    if let Some(o) = non_empty("object_id") {
        found.push(Selector::ObjectId(o));
    }
    if let Some(r) = non_empty("msi_res_id").or_else(|| non_empty("mi_res_id")) {
        found.push(Selector::ResourceId(r));
    }
    match found.len() {
        0 => Ok(Selector::Default),
        1 => Ok(found.remove(0)),
        _ => Err("Only one of client_id, object_id or msi_res_id can be specified"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adal_query_parses() {
        let q = ImdsQuery::parse(Some(
            "api-version=2018-02-01&client_id=abc&resource=https%3A%2F%2Fmanagement.azure.com%2F",
        ));
        assert!(!q.has_duplicates);
        assert_eq!(q.get("resource"), Some("https://management.azure.com/"));
        assert_eq!(check_api_version(&q, true), ApiVersionCheck::Ok);
        assert_eq!(selector(&q), Ok(Selector::ClientId("abc".into())));
    }

    #[test]
    fn versions_and_selectors_are_validated() {
        let q = ImdsQuery::parse(Some("api-version=2017-12-01&resource=x"));
        assert_eq!(check_api_version(&q, true), ApiVersionCheck::Unsupported);
        assert_eq!(check_api_version(&q, false), ApiVersionCheck::Ok);
        assert_eq!(
            check_api_version(&ImdsQuery::parse(None), true),
            ApiVersionCheck::Missing
        );
        let q = ImdsQuery::parse(Some("api-version=2099-01-01"));
        assert_eq!(check_api_version(&q, false), ApiVersionCheck::Unsupported);
        let q = ImdsQuery::parse(Some("mi_res_id=/r"));
        assert_eq!(selector(&q), Ok(Selector::ResourceId("/r".into())));
        let q = ImdsQuery::parse(Some("client_id=a&object_id=b"));
        assert!(selector(&q).is_err());
        assert!(ImdsQuery::parse(Some("resource=a&resource=b")).has_duplicates);
    }
}
