//! Command line of the probe. Every answer, error or not, is printed as one JSON line; the exit
//! code is non-zero only when the probe itself was misused.

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Method;

use crate::report::{HttpExchange, ProbeReport};
use crate::request::{TokenQuery, exchange, metadata_client, storage_client, token_url};

/// Storage REST version sent with every blob request.
pub const STORAGE_API_VERSION: &str = "2021-08-06";

#[derive(Debug, Parser)]
#[command(
    name = "podid-probe",
    about = "Asks IMDS for a token from inside a pod, as Azure SDKs do, and optionally uses it against Blob storage; prints one JSON line"
)]
pub struct ProbeArgs {
    #[command(subcommand)]
    pub command: ProbeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Request a token and print the exchange.
    Token(TokenArgs),
    /// Request a token, then call Blob storage with it.
    Blob(BlobArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Base URL of the instance metadata endpoint.
    #[arg(long, default_value = "http://169.254.169.254")]
    pub endpoint: String,
    #[arg(long, default_value = "/metadata/identity/oauth2/token")]
    pub path: String,
    #[arg(long)]
    pub resource: Option<String>,
    #[arg(long)]
    pub client_id: Option<String>,
    #[arg(long)]
    pub mi_res_id: Option<String>,
    #[arg(long)]
    pub msi_res_id: Option<String>,
    #[arg(long)]
    pub object_id: Option<String>,
    /// `api-version` query parameter; pass an empty string to leave it out.
    #[arg(long, default_value = "2018-02-01")]
    pub api_version: String,
    /// Leave out the `Metadata: true` header.
    #[arg(long)]
    pub no_metadata_header: bool,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Extra query parameter, `name=value` (repeatable).
    #[arg(long = "query", value_parser = parse_query)]
    pub query: Vec<(String, String)>,
    /// Send from this local address (one the pod took on, e.g. another pod's).
    #[arg(long)]
    pub source_address: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BlobOp {
    Read,
    Write,
    List,
}

#[derive(Debug, Clone, Args)]
pub struct BlobArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// Account endpoint, e.g. `https://acct.blob.core.windows.net`.
    #[arg(long)]
    pub account_url: String,
    #[arg(long, value_enum, default_value = "read")]
    pub op: BlobOp,
    #[arg(long)]
    pub container: String,
    #[arg(long)]
    pub blob: Option<String>,
    #[arg(long)]
    pub content: Option<String>,
    /// PEM bundle to trust instead of the platform roots.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not `Name: value`"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn parse_query(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not `name=value`"))?;
    Ok((k.to_string(), v.to_string()))
}

async fn request_token(args: &TokenArgs) -> Result<HttpExchange, String> {
    let query = TokenQuery {
        api_version: (!args.api_version.is_empty()).then(|| args.api_version.clone()),
        resource: args.resource.clone(),
        client_id: args.client_id.clone(),
        mi_res_id: args.mi_res_id.clone(),
        msi_res_id: args.msi_res_id.clone(),
        object_id: args.object_id.clone(),
        extra: args.query.clone(),
    };
    let url = token_url(&args.endpoint, &args.path, &query)?;
    let client = metadata_client(args.source_address)?;
    let mut request = client.get(url.clone());
    if !args.no_metadata_header {
        request = request.header("Metadata", "true");
    }
    for (k, v) in &args.headers {
        request = request.header(k, v);
    }
    Ok(exchange(request, Method::GET, url.as_str()).await)
}

async fn use_blob(args: &BlobArgs, access_token: &str) -> Result<HttpExchange, String> {
    let ca = match &args.ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?)
        }
        None => None,
    };
    let client = storage_client(ca.as_deref())?;
    let base = args.account_url.trim_end_matches('/');
    let (method, url) = match args.op {
        BlobOp::Read => (
            Method::GET,
            format!(
                "{base}/{}/{}",
                args.container,
                args.blob.as_deref().unwrap_or_default()
            ),
        ),
        BlobOp::Write => (
            Method::PUT,
            format!(
                "{base}/{}/{}",
                args.container,
                args.blob.as_deref().unwrap_or_default()
            ),
        ),
        BlobOp::List => (
            Method::GET,
            format!("{base}/{}?restype=container&comp=list", args.container),
        ),
    };
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
        .replace("+0000", "GMT");
    let mut request = client
        .request(method.clone(), &url)
        .bearer_auth(access_token)
        .header("x-ms-version", STORAGE_API_VERSION)
        .header("x-ms-date", date);
    if let BlobOp::Write = args.op {
        request = request
            .header("x-ms-blob-type", "BlockBlob")
            .body(args.content.clone().unwrap_or_default());
    }
    Ok(exchange(request, method, &url).await)
}

/// Runs the probe for parsed arguments.
pub async fn run(args: ProbeArgs) -> ProbeReport {
    let mut report = ProbeReport::default();
    match args.command {
        ProbeCommand::Token(t) => match request_token(&t).await {
            Ok(x) => report.token = Some(x),
            Err(e) => report.error = Some(e),
        },
        ProbeCommand::Blob(b) => {
            let token = match request_token(&b.token).await {
                Ok(x) => x,
                Err(e) => {
                    report.error = Some(e);
                    return report;
                }
            };
            let access_token = (token.status == Some(200))
                .then(|| serde_json::from_str::<serde_json::Value>(&token.body).ok())
                .flatten()
                .and_then(|v| {
                    v.get("access_token")
                        .and_then(|t| t.as_str())
                        .map(String::from)
                });
            report.token = Some(token);
            match access_token {
                None => {
                    report.error = Some(
                        "no access_token from the metadata endpoint; storage not called".into(),
                    )
                }
                Some(t) => match use_blob(&b, &t).await {
                    Ok(x) => report.blob = Some(x),
                    Err(e) => report.error = Some(e),
                },
            }
        }
    }
    report
}

/// Entry point of the `podid-probe` binary.
pub fn main() {
    main_from(std::env::args_os());
}

/// Runs the probe with an explicit command line (first item: the program name), so another
/// binary (`podid probe …`) can host it.
pub fn main_from<I, T>(argv: I)
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = ProbeArgs::parse_from(argv);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podid-probe: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let report = runtime.block_on(run(args));
    match serde_json::to_string(&report) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("podid-probe: cannot encode the report: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_sdk_style_token_urls() {
        let q = TokenQuery {
            api_version: Some("2018-02-01".into()),
            resource: Some("https://storage.azure.com/".into()),
            client_id: Some("abc".into()),
            ..TokenQuery::default()
        };
        let url = token_url(
            "http://169.254.169.254",
            "/metadata/identity/oauth2/token",
            &q,
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fstorage.azure.com%2F&client_id=abc"
        );
    }

    #[test]
    fn header_and_query_flags_parse() {
        assert_eq!(parse_header("X-A: b").unwrap(), ("X-A".into(), "b".into()));
        assert!(parse_header("nocolon").is_err());
        assert_eq!(parse_query("a=b=c").unwrap(), ("a".into(), "b=c".into()));
    }
}
