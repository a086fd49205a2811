//! Signed statements (xAPI 1.0.3, Data 2.6): the signature is a JWS in compact form,
//! attached with the signature usage type. Its algorithm must be RS256, RS384 or RS512;
//! its payload must be the statement as it was before the signature was attached; and
//! when its header carries a certificate (`x5c`), the signature must verify against it.
//! Without a certificate nothing proves who signed, which the specification leaves to
//! the reader of the statement.

use super::check;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm};
use serde_json::Value;
use webpki::{EndEntityCert, ring as algs};

/// Checks the JWS `signature` of `statement` (as checked: normalised, without what the
/// LRS adds). The error says what is wrong, for a 400.
pub fn verify(statement: &Value, signature: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(signature)
        .map_err(|_| "the signature is not a JWS: it is not text".to_owned())?
        .trim();
    let [header, payload, sig] = text.split('.').collect::<Vec<_>>()[..] else {
        return Err("the signature is not a JWS in compact form (header.payload.signature)".into());
    };
    let header: Value = decode_json(header, "header")?;
    let algorithm = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => algs::RSA_PKCS1_2048_8192_SHA256,
        Some("RS384") => algs::RSA_PKCS1_2048_8192_SHA384,
        Some("RS512") => algs::RSA_PKCS1_2048_8192_SHA512,
        other => {
            return Err(format!(
                "the JWS algorithm is {}; a signed statement uses RS256, RS384 or RS512",
                other.map_or("missing".to_owned(), |a| format!("`{a}`"))
            ));
        }
    };
    let signed: Value = decode_json(payload, "payload")?;
    let original = check(&signed, "payload").map_err(|errors| {
        let first = errors
            .first()
            .map(|e| format!("{}: {}", e.field, e.message))
            .unwrap_or_default();
        format!("the JWS payload is not a valid statement ({first})")
    })?;
    if comparable(&original.value, &original.value) != comparable(statement, &original.value) {
        return Err(
            "the JWS payload is not the statement sent: a signature covers the statement as it \
             was before the signature was attached"
                .into(),
        );
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "the JWS signature is not base64url".to_owned())?;
    if let Some(chain) = header.get("x5c") {
        let first = chain
            .as_array()
            .and_then(|c| c.first())
            .and_then(Value::as_str)
            .ok_or("the JWS header's x5c must be an array of base64 certificates")?;
        let der = STANDARD
            .decode(first)
            .map_err(|_| "the JWS header's first x5c certificate is not base64".to_owned())?;
        let der = CertificateDer::from(der);
        let certificate = EndEntityCert::try_from(&der)
            .map_err(|e| format!("the JWS header's first x5c certificate cannot be read: {e}"))?;
        let (signing_input, _) = text.rsplit_once('.').unwrap_or_default();
        verify_with(&certificate, algorithm, signing_input.as_bytes(), &sig)?;
    }
    Ok(())
}

fn verify_with(
    certificate: &EndEntityCert<'_>,
    algorithm: &dyn SignatureVerificationAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    certificate
        .verify_signature(algorithm, message, signature)
        .map_err(|_| "the JWS signature does not verify against its x5c certificate".to_owned())
}

fn decode_json(part: &str, name: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| format!("the JWS {name} is not base64url"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("the JWS {name} is not JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!("the JWS {name} is not a JSON object"));
    }
    Ok(value)
}

/// A statement without what may differ between the signed original and the statement
/// received: what the LRS sets (`authority`, `stored`, `version`; `id` and `timestamp`
/// when the original has none) and the signature attachment itself.
fn comparable(statement: &Value, original: &Value) -> Value {
    let mut value = statement.clone();
    if let Some(object) = value.as_object_mut() {
        for key in ["authority", "stored", "version"] {
            object.remove(key);
        }
        for key in ["id", "timestamp"] {
            if original.get(key).is_none() {
                object.remove(key);
            }
        }
        if let Some(Value::Array(list)) = object.get_mut("attachments") {
            list.retain(|a| a.get("usageType").and_then(Value::as_str) != Some(super::SIGNATURE));
            if list.is_empty() {
                object.remove("attachments");
            }
        }
    }
    value
}

/// Signs statements with a test key and its self-signed certificate, as a test signer.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::*;
    use ring::rand::SystemRandom;
    pub use ring::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512};
    use ring::signature::{RsaEncoding, RsaKeyPair};
    use serde_json::json;

    const KEY: &[u8] = include_bytes!("testdata/signer.pk8");
    const CERT: &[u8] = include_bytes!("testdata/signer.crt");

    /// A JWS of `payload` labelled `alg`, signed with `encoding`; with the test
    /// certificate in `x5c` when asked.
    pub fn sign(
        payload: &Value,
        alg: &str,
        encoding: &'static dyn RsaEncoding,
        x5c: bool,
    ) -> String {
        let mut header = json!({"alg": alg});
        if x5c {
            header["x5c"] = json!([STANDARD.encode(CERT)]);
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let key = RsaKeyPair::from_pkcs8(KEY).expect("the test key");
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(encoding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .expect("signed");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    fn statement() -> Value {
        json!({
            "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
            "actor": {"mbox": "mailto:ada@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
            "object": {"id": "http://example.com/phishing-101"}
        })
    }

    /// The statement as received: the signature attached.
    fn received(jws: &str) -> Value {
        let mut s = statement();
        s["attachments"] = json!([{
            "usageType": super::super::SIGNATURE,
            "display": {"en-US": "signature"},
            "contentType": "application/octet-stream",
            "length": jws.len(),
            "sha2": "0".repeat(64)
        }]);
        check(&s, "statement").unwrap().value
    }

    #[test]
    fn a_good_signature_passes_with_and_without_a_certificate() {
        let jws = sign(&statement(), "RS256", &RSA_PKCS1_SHA256, true);
        verify(&received(&jws), jws.as_bytes()).unwrap();
        let jws = sign(&statement(), "RS512", &RSA_PKCS1_SHA512, false);
        verify(&received(&jws), jws.as_bytes()).unwrap();
    }

    #[test]
    fn what_the_lrs_adds_is_not_a_difference() {
        let mut original = statement();
        original.as_object_mut().unwrap().remove("id");
        let jws = sign(&original, "RS256", &RSA_PKCS1_SHA256, true);
        let mut got = received(&jws);
        got["stored"] = json!("2026-12-03T10:00:00.000Z");
        got["version"] = json!("1.0.3");
        verify(&got, jws.as_bytes()).unwrap();
    }

    #[test]
    fn refuses_bad_signatures() {
        // Another algorithm.
        let jws = sign(&statement(), "HS256", &RSA_PKCS1_SHA256, false);
        assert!(
            verify(&received(&jws), jws.as_bytes())
                .unwrap_err()
                .contains("RS256")
        );
        // A payload that is not the statement.
        let mut other = statement();
        other["verb"]["id"] = json!("http://adlnet.gov/expapi/verbs/passed");
        let jws = sign(&other, "RS256", &RSA_PKCS1_SHA256, false);
        assert!(
            verify(&received(&jws), jws.as_bytes())
                .unwrap_err()
                .contains("not the statement")
        );
        // Signed with RS512 but labelled RS256: the certificate's check finds it.
        let jws = sign(&statement(), "RS256", &RSA_PKCS1_SHA512, true);
        assert!(
            verify(&received(&jws), jws.as_bytes())
                .unwrap_err()
                .contains("does not verify")
        );
        // A payload changed after signing.
        let jws = sign(&statement(), "RS256", &RSA_PKCS1_SHA256, true);
        let parts: Vec<&str> = jws.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(statement().to_string() + " "),
            parts[2]
        );
        assert!(
            verify(&received(&forged), forged.as_bytes())
                .unwrap_err()
                .contains("does not verify")
        );
        // Not a JWS at all, or a payload that is not JSON.
        assert!(verify(&received("x"), b"not a jws").is_err());
        let broken = format!(
            "{}.{}.AA",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode("{'id': 1}")
        );
        assert!(
            verify(&received(&broken), broken.as_bytes())
                .unwrap_err()
                .contains("not JSON")
        );
    }
}
