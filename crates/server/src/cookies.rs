//! Reading and writing the cookies of the HTML surfaces (learner pages, console).

use axum::http::header::{COOKIE, HeaderMap};

/// The value of the request's cookie `name`, if sent.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the request came over TLS (directly, or as a proxy in front says), so that
/// cookies are marked `Secure`.
pub fn over_tls(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    public_url.is_some_and(|url| url.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}
