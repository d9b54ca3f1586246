//! Who may use `confidant proxy`: only programs on this machine that address it by its own
//! loopback address, never a web page.
//!
//! The proxy attaches the user's bearer token to everything it forwards, so anything that can
//! make it send a request spends that token. A web page in the user's browser can send requests
//! to `http://127.0.0.1:PORT` (a cross-site "simple request" needs no preflight), and a DNS
//! rebinding attack can make `http://evil.example:PORT` resolve to the loopback address. Both are
//! refused here, before the body is read:
//!
//! - `Host` must be the address the proxy listens on (`127.0.0.1:PORT`, `[::1]:PORT`) or
//!   `localhost:PORT`: a rebound name carries the attacker's host name and is refused;
//! - an `Origin` header, which browsers send on cross-origin requests and on every `POST`, must be
//!   the proxy's own origin (`http://` + an allowed host), anything else (`null` included) is
//!   refused;
//! - `Sec-Fetch-Site`, which browsers send on every request, must be `same-origin` or `none`
//!   (typed by the user): `cross-site` and `same-site` (another port on this machine, another
//!   subdomain) are refused.
//!
//! SDKs and command-line clients send none of the browser headers and the proxy's own `Host`, so
//! they are unaffected. The proxy sends no CORS headers, so a browser never lets a page read a
//! reply either.

use std::net::SocketAddr;

use hyper::HeaderMap;
use hyper::header::{HOST, ORIGIN};

/// Why a request was refused (the stable code is [`Refusal::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Host`, or a `Host` that is not the proxy's own loopback address and port.
    Host,
    /// An `Origin` other than the proxy's own.
    Origin,
    /// `Sec-Fetch-Site` says a browser sent the request on behalf of another site.
    FetchSite,
}

impl Refusal {
    /// Stable machine-readable code for the JSON error body.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Host => "host_not_allowed",
            Refusal::Origin | Refusal::FetchSite => "cross_origin_refused",
        }
    }

    /// Short human-readable message (echoes nothing from the request).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Host => {
                "the proxy answers only requests addressed to its own loopback address"
            }
            Refusal::Origin => "cross-origin requests are refused: the proxy lends your token",
            Refusal::FetchSite => {
                "requests a browser sends for another site are refused: the proxy lends your token"
            }
        }
    }
}

const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// The hosts (`host:port`, lower case) a request to a proxy listening on `listen` may name.
pub fn allowed_hosts(listen: SocketAddr) -> Vec<String> {
    let port = listen.port();
    vec![
        match listen {
            SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
            SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
        },
        format!("localhost:{port}"),
    ]
}

/// Checks one request's headers against the proxy's listen address.
pub fn check(headers: &HeaderMap, allowed: &[String]) -> Result<(), Refusal> {
    let host = single(headers, HOST.as_str()).ok_or(Refusal::Host)?;
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        return Err(Refusal::Host);
    }
    if headers.contains_key(ORIGIN) {
        let origin = single(headers, ORIGIN.as_str()).ok_or(Refusal::Origin)?;
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|rest| allowed.iter().any(|a| a.eq_ignore_ascii_case(rest)));
        if !own {
            return Err(Refusal::Origin);
        }
    }
    if headers.contains_key(SEC_FETCH_SITE) {
        let site = single(headers, SEC_FETCH_SITE).ok_or(Refusal::FetchSite)?;
        if !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none")) {
            return Err(Refusal::FetchSite);
        }
    }
    Ok(())
}

/// The header's value when it appears exactly once and is visible ASCII.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok().map(str::trim)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn v4() -> Vec<String> {
        allowed_hosts("127.0.0.1:8080".parse().unwrap())
    }

    #[test]
    fn own_host_from_a_program_is_allowed() {
        for host in ["127.0.0.1:8080", "localhost:8080", "LocalHost:8080"] {
            assert_eq!(check(&headers(&[("host", host)]), &v4()), Ok(()), "{host}");
        }
        let v6 = allowed_hosts("[::1]:9000".parse().unwrap());
        assert_eq!(check(&headers(&[("host", "[::1]:9000")]), &v6), Ok(()));
    }

    #[test]
    fn foreign_or_missing_host_is_refused() {
        for host in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost",
            "127.0.0.2:8080",
            "localhost.evil.example:8080",
        ] {
            assert_eq!(
                check(&headers(&[("host", host)]), &v4()),
                Err(Refusal::Host),
                "{host}"
            );
        }
        assert_eq!(check(&headers(&[]), &v4()), Err(Refusal::Host));
        assert_eq!(
            check(
                &headers(&[("host", "127.0.0.1:8080"), ("host", "evil.example")]),
                &v4()
            ),
            Err(Refusal::Host)
        );
    }

    #[test]
    fn browser_same_origin_is_allowed_cross_origin_refused() {
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check(&ok, &v4()), Ok(()));
        let typed = headers(&[("host", "localhost:8080"), ("sec-fetch-site", "none")]);
        assert_eq!(check(&typed, &v4()), Ok(()));
        for origin in [
            "http://evil.example",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:3000",
            "null",
            "",
        ] {
            let h = headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]);
            assert_eq!(check(&h, &v4()), Err(Refusal::Origin), "{origin:?}");
        }
        for site in ["cross-site", "same-site", "bogus"] {
            let h = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", site)]);
            assert_eq!(check(&h, &v4()), Err(Refusal::FetchSite), "{site}");
        }
    }
}
