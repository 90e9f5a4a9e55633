//! Carriage returns in XML responses. XML parsers turn a raw CR (and CR LF) in text into LF
//! (XML 1.0 §2.11), so an object key holding `\r` listed in a plain XML response would reach
//! the client as another key. AWS writes it as `&#13;`; s3s writes it raw, so the gateway
//! rewrites it. (The other control characters XML 1.0 cannot carry at all are left as they
//! are, as AWS does; clients list with `encoding-type=url` for such keys.)

use bytes::{BufMut, Bytes, BytesMut};

/// Rewrites every CR of an XML response body held in memory as `&#13;`.
pub(crate) fn escape_carriage_returns(resp: &mut http::Response<s3s::Body>) {
    let is_xml = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/xml"));
    if !is_xml {
        return;
    }
    let Some(body) = resp.body().bytes() else {
        return;
    };
    if !body.contains(&b'\r') {
        return;
    }
    let escaped = escape(&body);
    if let Some(len) = resp.headers_mut().get_mut(http::header::CONTENT_LENGTH) {
        *len = http::HeaderValue::from(escaped.len());
    }
    *resp.body_mut() = s3s::Body::from(escaped);
}

fn escape(xml: &[u8]) -> Bytes {
    let crs = xml.iter().filter(|&&b| b == b'\r').count();
    let mut out = BytesMut::with_capacity(xml.len() + crs * 4);
    for (i, piece) in xml.split(|&b| b == b'\r').enumerate() {
        if i > 0 {
            out.put_slice(b"&#13;");
        }
        out.put_slice(piece);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriage_returns_in_xml_become_character_references() {
        let mut resp = http::Response::new(s3s::Body::from(Bytes::from_static(b"<Key>a\rb\r\n</Key>")));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/xml"),
        );
        escape_carriage_returns(&mut resp);
        assert_eq!(resp.body().bytes().unwrap(), &b"<Key>a&#13;b&#13;\n</Key>"[..]);
        // Other bodies are left alone.
        let mut obj = http::Response::new(s3s::Body::from(Bytes::from_static(b"a\rb")));
        escape_carriage_returns(&mut obj);
        assert_eq!(obj.body().bytes().unwrap(), &b"a\rb"[..]);
    }
}
