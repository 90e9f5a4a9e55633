//! The cluster's shared secret on every gRPC call: clients send it in [`SECRET_HEADER`], and
//! every service sits behind a [`SecretCheck`] that refuses a call without it before its
//! message is read.

use std::sync::Arc;

/// The request header carrying the cluster's shared secret.
pub const SECRET_HEADER: &str = "x-cairn-cluster-secret";

/// Refuses calls without the cluster secret (compared in constant time) with
/// `UNAUTHENTICATED`.
#[derive(Clone)]
pub struct SecretCheck {
    secret: Arc<[u8]>,
}

impl SecretCheck {
    /// A check for `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            secret: Arc::from(secret.as_bytes()),
        }
    }
}

impl tonic::service::Interceptor for SecretCheck {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let given = req
            .metadata()
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, &self.secret) {
            Ok(req)
        } else {
            Err(tonic::Status::unauthenticated("the cluster secret is missing or wrong"))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    fn with(secret: Option<&'static str>) -> tonic::Request<()> {
        let mut r = tonic::Request::new(());
        if let Some(s) = secret {
            r.metadata_mut().insert(SECRET_HEADER, s.parse().unwrap());
        }
        r
    }

    #[test]
    fn only_the_exact_secret_passes() {
        let mut check = SecretCheck::new("0123456789abcdef");
        assert!(check.call(with(Some("0123456789abcdef"))).is_ok());
        for wrong in [
            None,
            Some(""),
            Some("0123456789abcdeF"),
            Some("0123456789abcdef0"),
            Some("0123456789abcde"),
        ] {
            let e = check.call(with(wrong)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated, "{wrong:?}");
        }
    }
}
