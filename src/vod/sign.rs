//! Alibaba Cloud RPC signature, version 1 (HMAC-SHA1), used by the VOD OpenAPI client and
//! checked by the simulator. Pure: the timestamp and nonce come in as parameters.
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Percent-encodes per RFC 3986 as Alibaba requires: unreserved `A-Z a-z 0-9 - _ . ~` kept,
/// everything else `%XX` (so space is `%20`, `*` is `%2A`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[(b >> 4) as usize]));
            out.push(char::from(HEX[(b & 0xf) as usize]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Decodes `%XX` escapes (and `+` as space, as form encoding does); `None` on a bad escape or
/// invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonicalized query: parameters (all but `Signature`) sorted by name, each name and
/// value percent-encoded, joined as `k=v&k=v`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    encoded.sort();
    let mut out = String::new();
    for (i, (k, v)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// `METHOD & pe("/") & pe(canonical query)`.
pub fn string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// `base64(HMAC-SHA1(secret + "&", string_to_sign))`.
pub fn signature(access_key_secret: &str, method: &str, params: &[(String, String)]) -> String {
    let key = format!("{access_key_secret}&");
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign(method, params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Common parameters of a signed RPC request, supplied by the caller (clock and nonce are
/// adapter concerns).
#[derive(Debug, Clone)]
pub struct Common<'a> {
    pub access_key_id: &'a str,
    pub security_token: Option<&'a str>,
    /// UTC `YYYY-MM-DDThh:mm:ssZ`.
    pub timestamp: &'a str,
    /// Unique per request.
    pub nonce: &'a str,
    /// API version, `2017-03-21` for VOD.
    pub version: &'a str,
}

/// Adds the common parameters to `action`'s own parameters and signs them; returns the full
/// parameter list including `Signature`, ready to be sent as a query string or form body.
pub fn sign_request(
    access_key_secret: &str,
    method: &str,
    action: &str,
    common: &Common<'_>,
    params: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = vec![
        ("Action".into(), action.into()),
        ("Format".into(), "JSON".into()),
        ("Version".into(), common.version.into()),
        ("AccessKeyId".into(), common.access_key_id.into()),
        ("SignatureMethod".into(), "HMAC-SHA1".into()),
        ("SignatureVersion".into(), "1.0".into()),
        ("SignatureNonce".into(), common.nonce.into()),
        ("Timestamp".into(), common.timestamp.into()),
    ];
    if let Some(token) = common.security_token {
        all.push(("SecurityToken".into(), token.into()));
    }
    all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let sig = signature(access_key_secret, method, &all);
    all.push(("Signature".into(), sig));
    all
}

/// Encodes parameters as `k=v&...` with RFC 3986 encoding (the wire form of a signed request).
pub fn encode_query(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses `k=v&...` (query string or form body) into decoded pairs; `None` on a bad escape.
pub fn decode_query(s: &str) -> Option<Vec<(String, String)>> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Recomputes the signature of received parameters and compares it in constant time.
pub fn verify(access_key_secret: &str, method: &str, params: &[(String, String)]) -> bool {
    let Some((_, given)) = params.iter().find(|(k, _)| k == "Signature") else {
        return false;
    };
    let expected = signature(access_key_secret, method, params);
    crate::vod::callback_auth::constant_time_eq(expected.as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_params() -> Vec<(String, String)> {
        [
            ("AccessKeyId", "testAccessKeyId"),
            ("Action", "GetVideoPlayAuth"),
            ("Format", "JSON"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "8f8a035d-6496-4268-afd4-67c22837e38d"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2017-10-10T12:02:54Z"),
            ("Version", "2017-03-21"),
            ("VideoId", "5aed81b74ba84920be578cdfe004af4b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn vod_doc_worked_example_string_to_sign() {
        assert_eq!(
            string_to_sign("GET", &doc_params()),
            "GET&%2F&AccessKeyId%3DtestAccessKeyId%26Action%3DGetVideoPlayAuth%26Format%3DJSON\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D8f8a035d-6496-4268-afd4-67c22837e38d\
             %26SignatureVersion%3D1.0%26Timestamp%3D2017-10-10T12%253A02%253A54Z\
             %26Version%3D2017-03-21%26VideoId%3D5aed81b74ba84920be578cdfe004af4b"
        );
    }

    #[test]
    fn vod_doc_worked_example_signature() {
        assert_eq!(
            signature("testAccessKeySecret", "GET", &doc_params()),
            "Ibgh7y8Vp47LBuAsf5Xhi1SvDss="
        );
    }

    #[test]
    fn percent_encoding_follows_rfc3986_like_alibaba() {
        assert_eq!(percent_encode("a b*c~d/é"), "a%20b%2Ac~d%2F%C3%A9");
        assert_eq!(
            percent_decode("a%20b%2Ac~d%2F%C3%A9").as_deref(),
            Some("a b*c~d/é")
        );
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn signed_request_verifies_and_tampering_fails() {
        let common = Common {
            access_key_id: "id",
            security_token: Some("sts"),
            timestamp: "2026-01-01T00:00:00Z",
            nonce: "n-1",
            version: "2017-03-21",
        };
        let params = sign_request(
            "secret",
            "POST",
            "SubmitTranscodeJobs",
            &common,
            &[("VideoId", "v 1*")],
        );
        let wire = encode_query(&params);
        let back = decode_query(&wire).expect("decodes");
        assert!(verify("secret", "POST", &back));
        assert!(!verify("other", "POST", &back));
        assert!(!verify("secret", "GET", &back));
        let mut tampered = back.clone();
        tampered
            .iter_mut()
            .find(|(k, _)| k == "VideoId")
            .expect("present")
            .1 = "v2".into();
        assert!(!verify("secret", "POST", &tampered));
    }
}
