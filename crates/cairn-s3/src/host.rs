//! Virtual-host-style addressing: `bucket.DOMAIN[:port]` names a bucket; every other host (the
//! bare domain, an IP address, `localhost`) is path-style.

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// Host parsing for one base domain, ignoring the port clients put in the Host header.
#[derive(Debug, Clone)]
pub struct DomainHost {
    domain: String,
}

impl DomainHost {
    /// Virtual-host-style addressing under `domain` (for example `s3.example.com`).
    pub fn new(domain: &str) -> Result<Self, String> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if valid {
            Ok(Self { domain })
        } else {
            Err(format!("invalid domain {domain:?}"))
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let name = strip_port(host);
        if name.len() > self.domain.len() + 1 {
            let (bucket, rest) = name.split_at(name.len() - self.domain.len() - 1);
            if rest[1..].eq_ignore_ascii_case(&self.domain) && rest.starts_with('.') {
                return Ok(VirtualHost::new(self.domain.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_subdomains_only() {
        let h = DomainHost::new("s3.test").unwrap();
        let bucket = |host: &str| h.parse_host_header(host).unwrap().bucket().map(str::to_string);
        assert_eq!(bucket("photos.s3.test:9000"), Some("photos".into()));
        assert_eq!(bucket("my.dotted.bucket.s3.test"), Some("my.dotted.bucket".into()));
        assert_eq!(bucket("s3.test:9000"), None);
        assert_eq!(bucket("127.0.0.1:9000"), None);
        assert_eq!(bucket("localhost"), None);
        assert_eq!(bucket("[::1]:9000"), None);
        assert_eq!(bucket("evil-s3.test"), None);
        assert!(DomainHost::new("bad_domain").is_err());
    }
}
