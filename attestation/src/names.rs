//! The names an attested enclave's certificate may carry (subjectAltName `dNSName` and
//! `iPAddress`). They come from the policy (`tls_names` of a model), never from the enclave's
//! request: a request may ask for a subset, and a request for any other name is refused.

use std::net::IpAddr;

/// Longest DNS name (RFC 1035 §2.3.4).
const MAX_DNS_NAME: usize = 253;

/// One subjectAltName entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubjectName {
    /// A DNS host name, lowercase, without a trailing dot. No wildcards.
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

/// Why text is not a certificate name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a certificate name is an IP address or a DNS host name (labels of 1-63 letters, digits and \
     hyphens, at most 253 characters, no wildcard)"
)]
pub struct NameError;

impl SubjectName {
    /// Parses an IP address literal or a DNS host name (case-insensitive; stored lowercase).
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(SubjectName::Ip(ip));
        }
        let valid = !text.is_empty()
            && text.len() <= MAX_DNS_NAME
            && text.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if valid {
            Ok(SubjectName::Dns(text.to_ascii_lowercase()))
        } else {
            Err(NameError)
        }
    }
}

impl std::fmt::Display for SubjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubjectName::Dns(d) => f.write_str(d),
            SubjectName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_addresses() {
        assert_eq!(
            SubjectName::parse("Enclave.Example"),
            Ok(SubjectName::Dns("enclave.example".into()))
        );
        assert_eq!(
            SubjectName::parse("127.0.0.1"),
            Ok(SubjectName::Ip("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            SubjectName::parse("::1"),
            Ok(SubjectName::Ip("::1".parse().unwrap()))
        );
        for bad in [
            "",
            "*.example",
            "a..b",
            "-a.example",
            "a-.example",
            "a b",
            "example.",
            &"a".repeat(64),
        ] {
            assert_eq!(SubjectName::parse(bad), Err(NameError), "{bad:?}");
        }
    }
}
