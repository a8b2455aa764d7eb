//! http:// and https:// URLs as `http::Uri` (the url crate and its IDNA tables are not worth
//! their size for the few URLs the agent is configured with: issue 20), checked once where
//! they are configured, and the joins the clients need.

use http::Uri;
use http::uri::PathAndQuery;

/// Why a configured URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0}")]
    Invalid(String),
    #[error("scheme must be http or https")]
    Scheme,
    #[error("no host")]
    NoHost,
}

/// An absolute http:// or https:// URL with a host.
pub fn parse(text: &str) -> Result<Uri, UrlError> {
    let uri: Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| UrlError::Invalid(e.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(UrlError::Scheme);
    }
    let host = uri.host().unwrap_or_default();
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    // http::Uri takes any digits as the port (and then reports none): refuse 99999 here
    // rather than connect to the scheme's port.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let after_host = authority
        .rfind(host)
        .map_or("", |i| &authority[i + host.len()..]);
    if !after_host.is_empty() && uri.port_u16().is_none() {
        return Err(UrlError::Invalid(format!("invalid port {after_host:?}")));
    }
    Ok(uri)
}

/// The port a connection to `uri` goes to: the explicit one, else the scheme's.
pub fn port(uri: &Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        })
}

/// `base` with its path replaced by `path` (which starts with `/`), the query kept.
pub fn with_path(base: &Uri, path: &str) -> Result<Uri, UrlError> {
    let path_and_query = match base.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).map_err(|e| UrlError::Invalid(e.to_string()))?);
    Uri::from_parts(parts).map_err(|e| UrlError::Invalid(e.to_string()))
}

/// `base` with `tail` appended to its path (a prefix such as a proxy's `/alertmanager/` kept).
pub fn join(base: &Uri, tail: &str) -> Result<Uri, UrlError> {
    let prefix = base.path().trim_end_matches('/');
    with_path(base, &format!("{prefix}/{}", tail.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_with_a_host_pass() {
        assert!(parse("http://127.0.0.1:9093").is_ok());
        assert!(parse("https://[::1]:4318/v1/metrics").is_ok());
        assert_eq!(parse("ftp://x"), Err(UrlError::Scheme));
        assert_eq!(parse("localhost:11434"), Err(UrlError::Scheme));
        assert!(matches!(parse("not a url"), Err(UrlError::Invalid(_))));
        assert!(parse("http://").is_err());
        assert!(parse("http://host:99999").is_err());
    }

    #[test]
    fn the_port_defaults_by_scheme() {
        assert_eq!(port(&parse("http://h").unwrap()), 80);
        assert_eq!(port(&parse("https://h").unwrap()), 443);
        assert_eq!(port(&parse("https://h:8443").unwrap()), 8443);
    }

    #[test]
    fn paths_are_replaced_or_appended() {
        let base = parse("http://h:11434/ignored?x=1").unwrap();
        assert_eq!(
            with_path(&base, "/api/ps").unwrap().to_string(),
            "http://h:11434/api/ps?x=1"
        );
        assert_eq!(
            join(&parse("http://h:9093").unwrap(), "/api/v2/alerts")
                .unwrap()
                .to_string(),
            "http://h:9093/api/v2/alerts"
        );
        assert_eq!(
            join(
                &parse("https://am.example/alertmanager/").unwrap(),
                "/api/v2/alerts"
            )
            .unwrap()
            .to_string(),
            "https://am.example/alertmanager/api/v2/alerts"
        );
    }
}
