//! The server a client talks to, parsed once from its base URL.

use rustls::pki_types::ServerName;

use crate::error::ConfigError;

/// `https://host[:port][/prefix]`, resolved into what TCP, TLS and HTTP need.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Host as used for DNS / the socket (IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The name the certificate must carry.
    pub(crate) server_name: ServerName<'static>,
    /// `Host` header value.
    pub(crate) authority: String,
    /// Path prefix without a trailing slash ("" or "/something").
    pub(crate) prefix: String,
}

impl Target {
    /// Parses a base URL. Only `https` is accepted: the whole point is the attested TLS channel.
    pub(crate) fn parse(url: &str) -> Result<Self, ConfigError> {
        let uri: http::Uri = url.parse().map_err(|_| ConfigError::BadUrl)?;
        if uri.scheme_str() != Some("https") || uri.query().is_some() {
            return Err(ConfigError::BadUrl);
        }
        let authority = uri.authority().ok_or(ConfigError::BadUrl)?;
        if authority.as_str().contains('@') {
            return Err(ConfigError::BadUrl);
        }
        let raw_host = authority.host();
        let host = raw_host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(raw_host)
            .to_string();
        if host.is_empty() {
            return Err(ConfigError::BadUrl);
        }
        let port = authority.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).map_err(|_| ConfigError::BadUrl)?;
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Target {
            host,
            port,
            server_name,
            authority: authority.as_str().to_string(),
            prefix,
        })
    }

    /// The request path for an API path such as `/v1/chat/completions`.
    pub(crate) fn path(&self, api_path: &str) -> String {
        format!("{}{}", self.prefix, api_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_prefixes() {
        let t = Target::parse("https://enclave.example").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("enclave.example", 443, "")
        );
        let t = Target::parse("https://127.0.0.1:8443/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8443));
        assert_eq!(t.path("/v1/models"), "/v1/models");
        let t = Target::parse("https://[::1]:9/api/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        assert_eq!(t.path("/v1/models"), "/api/v1/models");
        assert_eq!(t.authority, "[::1]:9");
    }

    #[test]
    fn refuses_anything_but_https() {
        for bad in [
            "http://x",
            "x:1",
            "https://u@x",
            "https://x/?q=1",
            "ftp://x",
            "",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
