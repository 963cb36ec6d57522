//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `{webhook-id}.{webhook-timestamp}.{body}`.
//!
//! The key: a secret of the form `whsec_<base64>` (the form Standard Webhooks libraries take)
//! is the base64 text's bytes. webhookd generates target secrets in exactly that form
//! (`whsec_` + padded standard base64 of 32 random bytes, see
//! [`Secret::signing_key_from_random`]); its base64 is still read in either alphabet, padded
//! or not, because earlier versions generated `whsec_` + unpadded URL-safe base64, and
//! [`standard_form`] turns such a secret into the standard text of the same key. A secret
//! without the prefix, or whose text after it is not base64, is used as is (its UTF-8 bytes).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use ring::hmac;
use webhook_domain::model::Secret;

/// Prefix of Standard Webhooks symmetric secrets.
pub const SECRET_PREFIX: &str = "whsec_";

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// The HMAC key bytes of a signing secret (see the module docs).
fn key_bytes(secret: &Secret) -> Vec<u8> {
    let text = secret.expose();
    text.strip_prefix(SECRET_PREFIX)
        .and_then(|encoded| {
            STANDARD_LENIENT
                .decode(encoded)
                .or_else(|_| URL_SAFE_LENIENT.decode(encoded))
                .ok()
        })
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

/// `secret` as `whsec_` + padded standard base64 of its key bytes: what to hand to a Standard
/// Webhooks library on the receiving side. Signatures are the same with either form.
pub fn standard_form(secret: &Secret) -> Secret {
    let mut text = String::from(SECRET_PREFIX);
    STANDARD.encode_string(key_bytes(secret), &mut text);
    Secret::from_unsealed(text)
}

/// A target's signing key, ready to sign many messages.
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// The key of a target's signing secret.
    pub fn new(secret: &Secret) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, &key_bytes(secret)))
    }

    /// The `webhook-signature` header value for a message: `v1,<base64 signature>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(msg_id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        let mut header = String::from("v1,");
        STANDARD.encode_string(context.sign().as_ref(), &mut header);
        header
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    /// The example of the Standard Webhooks reference libraries' test suites.
    #[test]
    fn matches_the_reference_example() {
        let secret = Secret::from_unsealed("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into());
        let signature = SigningKey::new(&secret).sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn generated_secrets_sign_with_their_random_bytes() {
        // Bytes whose base64 uses the characters where the two alphabets differ.
        let random = [0xFB; Secret::GENERATED_BYTES];
        let generated = Secret::from_random(SECRET_PREFIX, &random);
        assert!(generated.expose().contains('-') || generated.expose().contains('_'));
        let standard = standard_form(&generated);
        assert_eq!(
            standard.expose(),
            format!("{SECRET_PREFIX}{}", STANDARD.encode(random))
        );
        assert_eq!(key_bytes(&generated), random);
        assert_eq!(key_bytes(&standard), random);
        let unpadded = Secret::from_unsealed(format!(
            "{SECRET_PREFIX}{}",
            URL_SAFE_NO_PAD
                .encode(random)
                .replace('-', "+")
                .replace('_', "/")
        ));
        assert_eq!(key_bytes(&unpadded), random);
        let body = b"{}";
        assert_eq!(
            SigningKey::new(&generated).sign("id", 1, body),
            SigningKey::new(&standard).sign("id", 1, body)
        );
    }

    #[test]
    fn generated_signing_keys_are_already_standard() {
        let random = [0xFB; Secret::GENERATED_BYTES];
        let key = Secret::signing_key_from_random(&random);
        assert_eq!(key_bytes(&key), random);
        assert_eq!(standard_form(&key), key);
    }

    #[test]
    fn other_secrets_are_their_own_bytes() {
        for text in ["plain-secret-0123456789", "whsec_not base64!", "whsec_"] {
            let secret = Secret::from_unsealed(text.into());
            assert_eq!(key_bytes(&secret), text.as_bytes(), "{text}");
        }
        assert!(
            !format!("{:?}", SigningKey::new(&Secret::from_unsealed("x".into()))).contains('x')
        );
    }
}
