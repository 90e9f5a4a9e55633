//! The screen: what is refused from the request head alone, before any authentication work or
//! any body byte is read.
//!
//! - a header section larger than the server's bound (`RequestHeaderSectionTooLarge`);
//! - Signature Version 2 outside AWS's time window: a header-signed request whose `Date`
//!   (or `x-amz-date`) is missing or more than 15 minutes from now (`RequestTimeTooSkewed`),
//!   a presigned URL whose `Expires` is more than a week ahead (s3s checks the signature and
//!   that the URL has not expired, but neither bound);
//! - presigned URLs valid for more than a week (`X-Amz-Expires` > 604800), as AWS refuses them;
//! - credential scopes for another service than `s3`;
//! - `x-amz-*` headers that the signature does not cover (AWS: "There were headers present in
//!   the request which were not signed"), so that a presigned PUT cannot be turned into a copy
//!   by adding `x-amz-copy-source`, nor a captured request altered;
//! - a declared body (`Content-Length`, or `x-amz-decoded-content-length`) above 5 GiB on a
//!   PUT (`EntityTooLarge`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, Request, StatusCode};
use percent_encoding::percent_decode_str;

/// Longest validity of a presigned URL, in seconds (7 days).
pub const MAX_PRESIGN_EXPIRES: u64 = 604_800;

/// Largest difference between a signed request's time and ours, as on AWS.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// A request refused by the screen, with the S3 error it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// S3 error code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: &'static str,
}

impl Refusal {
    const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        Self { status, code, message }
    }

    /// `503 SlowDown`: the server is at its in-flight limit; SDKs back off and retry.
    pub fn slow_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        )
    }

    /// The S3 error document.
    pub fn xml(&self) -> String {
        // Code and message are fixed strings of ours: nothing to escape.
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
            self.code, self.message
        )
    }
}

const NOT_SIGNED: Refusal = Refusal::new(
    StatusCode::FORBIDDEN,
    "AccessDenied",
    "There were headers present in the request which were not signed",
);
const SKEWED: Refusal = Refusal::new(
    StatusCode::FORBIDDEN,
    "RequestTimeTooSkewed",
    "The difference between the request time and the current time is too large.",
);
const NO_DATE: Refusal = Refusal::new(
    StatusCode::FORBIDDEN,
    "AccessDenied",
    "AWS authentication requires a valid Date or x-amz-date header",
);
const V2_EXPIRES: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "AuthorizationQueryParametersError",
    "Expires must be a Unix time in seconds, less than a week (604800 seconds) from now",
);
const EXPIRES: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "AuthorizationQueryParametersError",
    "X-Amz-Expires must be a whole number of seconds, less than a week (604800)",
);
const QUERY_SERVICE: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "AuthorizationQueryParametersError",
    "The credential scope must name the service s3",
);
const HEADER_SERVICE: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "AuthorizationHeaderMalformed",
    "The authorization header is malformed; the credential scope must name the service s3",
);
const HEADER_TOO_LARGE: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "RequestHeaderSectionTooLarge",
    "Your request header section exceeds the maximum allowed size.",
);
const TOO_LARGE: Refusal = Refusal::new(
    StatusCode::BAD_REQUEST,
    "EntityTooLarge",
    "Your proposed upload exceeds the maximum allowed size",
);

/// Approximate size of the request head as it came over the wire.
fn head_bytes<B>(req: &Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 12;
    let headers: usize = req.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    line + headers + 2
}

/// The query's parameters, names as sent, values percent-decoded.
fn query_params(query: &str) -> Vec<(&str, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (
                n,
                percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect()
}

/// The (region, service) of a SigV4 credential (`AK/date/region/service/aws4_request`). The
/// access key may itself contain `/`, so the scope is read from the end.
pub(crate) fn scope_of(credential: &str) -> Option<(&str, &str)> {
    let mut parts = credential.rsplit('/');
    if parts.next()? != "aws4_request" {
        return None;
    }
    let service = parts.next()?;
    let region = parts.next()?;
    Some((region, service))
}

fn credential_service(credential: &str) -> Option<&str> {
    scope_of(credential).map(|(_, service)| service)
}

/// Every `x-amz-*` header present must be among the signed ones.
fn all_amz_signed(headers: &HeaderMap, signed: &str) -> bool {
    let signed: Vec<&str> = signed.split(';').map(str::trim).collect();
    headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| n.starts_with("x-amz-"))
        .all(|n| signed.iter().any(|s| s.eq_ignore_ascii_case(n)))
}

fn declared_size(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The time a SigV2 header-signed request claims: `x-amz-date` wins over `Date`, as on AWS.
fn v2_request_time(headers: &HeaderMap) -> Option<SystemTime> {
    let value = headers
        .get("x-amz-date")
        .or_else(|| headers.get(http::header::DATE))?
        .to_str()
        .ok()?;
    httpdate::parse_http_date(value.trim()).ok()
}

fn distance(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b).or_else(|_| b.duration_since(a)).unwrap_or_default()
}

/// Checks a request head; `Err` carries the S3 error to answer with. Cheap: no I/O, no
/// cryptography, no body.
pub fn screen<B>(req: &Request<B>, max_header_bytes: usize) -> Result<(), Refusal> {
    screen_at(req, max_header_bytes, SystemTime::now())
}

fn screen_at<B>(req: &Request<B>, max_header_bytes: usize, now: SystemTime) -> Result<(), Refusal> {
    if head_bytes(req) > max_header_bytes {
        return Err(HEADER_TOO_LARGE);
    }
    let headers = req.headers();
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if auth.starts_with("AWS ") {
            // SigV2 signs the date but sets no window of its own: hold it to AWS's.
            let at = v2_request_time(headers).ok_or(NO_DATE)?;
            if distance(at, now) > MAX_SKEW {
                return Err(SKEWED);
            }
        }
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
            let field = |name: &str| {
                rest.split(',')
                    .map(str::trim)
                    .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            };
            if let Some(cred) = field("Credential") {
                if credential_service(cred).is_some_and(|s| s != "s3") {
                    return Err(HEADER_SERVICE);
                }
            }
            if let Some(signed) = field("SignedHeaders") {
                if !all_amz_signed(headers, signed) {
                    return Err(NOT_SIGNED);
                }
            }
        }
    }
    if let Some(query) = req.uri().query() {
        let params = query_params(query);
        let get = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        if get("AWSAccessKeyId").is_some() && get("Signature").is_some() {
            let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            match get("Expires").map(str::parse::<u64>) {
                Some(Ok(at)) if at <= now_secs + MAX_PRESIGN_EXPIRES => {}
                _ => return Err(V2_EXPIRES),
            }
        }
        if get("X-Amz-Algorithm").is_some() || get("X-Amz-Signature").is_some() {
            match get("X-Amz-Expires").map(str::parse::<u64>) {
                Some(Ok(secs)) if secs <= MAX_PRESIGN_EXPIRES => {}
                Some(_) => return Err(EXPIRES),
                None => {}
            }
            if let Some(cred) = get("X-Amz-Credential") {
                if credential_service(cred).is_some_and(|s| s != "s3") {
                    return Err(QUERY_SERVICE);
                }
            }
            if !all_amz_signed(headers, get("X-Amz-SignedHeaders").unwrap_or("")) {
                return Err(NOT_SIGNED);
            }
        }
    }
    if req.method() == Method::PUT {
        let max = cairn_types::limits::MAX_PART_SIZE;
        let declared = [http::header::CONTENT_LENGTH.as_str(), "x-amz-decoded-content-length"]
            .into_iter()
            .filter_map(|n| declared_size(headers, n))
            .max();
        if declared.is_some_and(|n| n > max) {
            return Err(TOO_LARGE);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(Method::PUT).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    const PRESIGNED: &str = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261123%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261123T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00";

    #[test]
    fn presigned_urls_valid_for_more_than_a_week_are_refused() {
        assert_eq!(
            screen(&req(&format!("{PRESIGNED}&X-Amz-Expires=604800"), &[]), 16384),
            Ok(())
        );
        for bad in ["604801", "2592000", "-1", "x"] {
            let r = screen(&req(&format!("{PRESIGNED}&X-Amz-Expires={bad}"), &[]), 16384);
            assert_eq!(r.unwrap_err().code, "AuthorizationQueryParametersError", "{bad}");
        }
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let url = format!("{PRESIGNED}&X-Amz-Expires=60");
        let r = screen(&req(&url, &[("x-amz-copy-source", "/other/secret")]), 16384);
        assert_eq!(r.unwrap_err().status, StatusCode::FORBIDDEN);
        let auth = "AWS4-HMAC-SHA256 Credential=AK/20261123/us-east-1/s3/aws4_request, \
                    SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00";
        let signed = [
            ("authorization", auth),
            ("x-amz-date", "20261123T000000Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ];
        assert_eq!(screen(&req("/b/k", &signed), 16384), Ok(()));
        let mut extra = signed.to_vec();
        extra.push(("x-amz-copy-source", "/other/secret"));
        assert_eq!(screen(&req("/b/k", &extra), 16384).unwrap_err().code, "AccessDenied");
    }

    #[test]
    fn sigv2_is_held_to_aws_time_window() {
        let now = SystemTime::now();
        let at = |d: SystemTime| httpdate::fmt_http_date(d);
        let v2 = |date: Option<String>| {
            let mut h = vec![("authorization".to_string(), "AWS AK:c2ln".to_string())];
            if let Some(d) = date {
                h.push(("date".into(), d));
            }
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            screen_at(&req("/b/k", &h), 16384, now)
        };
        assert_eq!(v2(Some(at(now))), Ok(()));
        assert_eq!(v2(Some(at(now - Duration::from_secs(14 * 60)))), Ok(()));
        assert_eq!(
            v2(Some(at(now - Duration::from_secs(16 * 60)))).unwrap_err().code,
            "RequestTimeTooSkewed"
        );
        assert_eq!(
            v2(Some(at(now + Duration::from_secs(3600)))).unwrap_err().code,
            "RequestTimeTooSkewed"
        );
        assert_eq!(v2(None).unwrap_err().code, "AccessDenied");
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let q = |expires: u64| {
            screen_at(
                &req(&format!("/b/k?AWSAccessKeyId=AK&Expires={expires}&Signature=x"), &[]),
                16384,
                now,
            )
        };
        assert_eq!(q(secs + 3600), Ok(()));
        assert_eq!(q(secs + 604_800), Ok(()));
        assert_eq!(
            q(secs + 30 * 86_400).unwrap_err().code,
            "AuthorizationQueryParametersError"
        );
    }

    #[test]
    fn other_services_are_refused() {
        let ec2 = "AWS4-HMAC-SHA256 Credential=AK/20261123/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";
        let r = screen(&req("/b/k", &[("authorization", ec2)]), 16384);
        assert_eq!(r.unwrap_err().code, "AuthorizationHeaderMalformed");
    }

    #[test]
    fn oversized_heads_and_bodies_are_refused() {
        let big = "v".repeat(20_000);
        let r = screen(&req("/b/k", &[("x-amz-meta-big", &big)]), 16384);
        assert_eq!(r.unwrap_err().code, "RequestHeaderSectionTooLarge");
        let r = screen(&req("/b/k", &[("content-length", "5368709121")]), 16384);
        assert_eq!(r.unwrap_err().code, "EntityTooLarge");
        let r = screen(&req("/b/k", &[("x-amz-decoded-content-length", "6000000000")]), 16384);
        assert_eq!(r.unwrap_err().code, "EntityTooLarge");
        assert_eq!(screen(&req("/b/k", &[("content-length", "5368709120")]), 16384), Ok(()));
    }
}
