//! HMAC-SHA1, HMAC-SHA256 and HMAC-SHA512 with `ring`, for the senders' body signatures.

use ring::hmac;
use webhook_domain::model::MacAlgorithm;
use webhook_domain::ports::SignatureMac;

/// The [`SignatureMac`] port on `ring::hmac`; verification is `ring`'s constant-time check.
#[derive(Debug, Clone, Copy, Default)]
pub struct RingMac;

fn key(algorithm: MacAlgorithm, key: &[u8]) -> hmac::Key {
    let algorithm = match algorithm {
        // Some senders still sign with SHA-1; HMAC-SHA1 has no known practical attack.
        MacAlgorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        MacAlgorithm::Sha256 => hmac::HMAC_SHA256,
        MacAlgorithm::Sha512 => hmac::HMAC_SHA512,
    };
    hmac::Key::new(algorithm, key)
}

impl SignatureMac for RingMac {
    fn sign(&self, algorithm: MacAlgorithm, secret: &[u8], message: &[&[u8]]) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&key(algorithm, secret));
        for part in message {
            context.update(part);
        }
        context.sign().as_ref().to_vec()
    }

    fn verify(
        &self,
        algorithm: MacAlgorithm,
        secret: &[u8],
        message: &[&[u8]],
        tag: &[u8],
    ) -> bool {
        let key = key(algorithm, secret);
        match message {
            [whole] => hmac::verify(&key, whole, tag).is_ok(),
            parts => hmac::verify(&key, &parts.concat(), tag).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use webhook_domain::model::{Secret, Source, SourceSettings, Timestamp};
    use webhook_domain::rules::{AuthFailure, Authenticity, Extraction, MediaType};

    use super::*;
    use crate::MiniJinjaTemplates;

    fn hex(bytes: &[u8]) -> String {
        use std::fmt::Write as _;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
            .collect()
    }

    fn at(unix_seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(unix_seconds * 1_000_000)
    }

    #[test]
    fn rfc_test_vectors() {
        // RFC 2202 and RFC 4231, test case 2.
        let check = |algorithm, expected: &str| {
            let tag = RingMac.sign(algorithm, b"Jefe", &[b"what do ya ", b"want for nothing?"]);
            assert_eq!(hex(&tag), expected, "{algorithm:?}");
            assert_eq!(tag.len(), algorithm.tag_len());
            assert!(RingMac.verify(algorithm, b"Jefe", &[b"what do ya want for nothing?"], &tag));
            assert!(RingMac.verify(
                algorithm,
                b"Jefe",
                &[b"what", b" do ya want for nothing?"],
                &tag
            ));
            assert!(!RingMac.verify(algorithm, b"Jeff", &[b"what do ya want for nothing?"], &tag));
            assert!(!RingMac.verify(algorithm, b"Jefe", &[b"what do ya want for nothing!"], &tag));
            assert!(!RingMac.verify(
                algorithm,
                b"Jefe",
                &[b"what do ya want for nothing?"],
                &tag[1..]
            ));
            assert!(!RingMac.verify(algorithm, b"Jefe", &[b"what do ya want for nothing?"], b""));
        };
        check(
            MacAlgorithm::Sha1,
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        );
        check(
            MacAlgorithm::Sha256,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        );
        check(
            MacAlgorithm::Sha512,
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        );
    }

    #[test]
    fn empty_messages_and_keys() {
        let tag = RingMac.sign(MacAlgorithm::Sha256, b"", &[]);
        assert_eq!(
            hex(&tag),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
        );
        assert!(RingMac.verify(MacAlgorithm::Sha256, b"", &[], &tag));
        assert!(RingMac.verify(MacAlgorithm::Sha256, b"", &[b""], &tag));
    }

    #[test]
    fn github_documentation_vector() {
        // From GitHub's "Validating webhook deliveries". The secret has spaces, which a
        // secret set through the API may not; build it as a stored one would be read back.
        let secret = Secret::from_unsealed("It's a Secret to Everybody".to_owned());
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let settings = SourceSettings::of(Source::Github);
        let check = |signature: &str, body: &[u8], expected| {
            let headers = headers(&[
                ("X-Hub-Signature-256", signature),
                ("X-GitHub-Event", "push"),
            ]);
            let verdict = settings.verify_body(&headers, body, &[&secret], at(0), &RingMac);
            assert_eq!(verdict, expected, "{signature} {body:?}");
        };
        check(signature, b"Hello, World!", Ok(Authenticity::Verified));
        check(
            signature,
            b"Hello, World?",
            Err(AuthFailure::InvalidSignature),
        );
        check(
            &signature.replace("757", "758"),
            b"Hello, World!",
            Err(AuthFailure::InvalidSignature),
        );
    }

    #[test]
    fn slack_documentation_vector() {
        // From Slack's "Verifying requests from Slack": a slash command.
        let secret = Secret::parse("8f742231b10e8888abcd99yyyzzz85a5").unwrap();
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let timestamp = 1_531_420_618;
        let headers = headers(&[
            (
                "X-Slack-Signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
            ("X-Slack-Request-Timestamp", "1531420618"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ]);
        let settings = SourceSettings::of(Source::Slack);
        let verify =
            |now| settings.verify_body(&headers, body.as_bytes(), &[&secret], now, &RingMac);
        assert_eq!(verify(at(timestamp + 299)), Ok(Authenticity::Verified));
        assert_eq!(verify(at(timestamp - 300)), Ok(Authenticity::Verified));
        assert_eq!(
            verify(at(timestamp + 301)),
            Err(AuthFailure::SignatureExpired)
        );
        let other = Secret::parse("8f742231b10e8888abcd99yyyzzz85a6").unwrap();
        assert_eq!(
            settings.verify_body(
                &headers,
                body.as_bytes(),
                &[&other],
                at(timestamp),
                &RingMac
            ),
            Err(AuthFailure::InvalidSignature)
        );
        assert_eq!(
            settings.verify_body(
                &headers,
                body.as_bytes(),
                &[&other, &secret],
                at(timestamp),
                &RingMac
            ),
            Ok(Authenticity::Verified)
        );

        // The form becomes the task: event type the command, instruction its text, or the
        // command itself when the text is empty, as here.
        let json = settings
            .payload_json(MediaType::Form, body.as_bytes())
            .unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let Extraction::Event(fields) =
            settings.extract(&headers, &payload, &MiniJinjaTemplates::new())
        else {
            panic!("a slash command is an event");
        };
        assert_eq!(fields.event_type.as_deref(), Some("/webhook-collect"));
        assert_eq!(fields.instruction.as_deref(), Some("/webhook-collect"));
        assert_eq!(fields.delivery_id, None);
    }

    #[test]
    fn standard_webhooks_specification_vector() {
        // The test vector of the Standard Webhooks reference libraries.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let timestamp = 1_614_265_330;
        let settings = SourceSettings::of(Source::StandardWebhooks);
        let check = |signature: &str, now: i64, expected| {
            let headers = headers(&[
                ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
                ("webhook-timestamp", "1614265330"),
                ("webhook-signature", signature),
            ]);
            let verdict = settings.verify_body(&headers, body, &[&secret], at(now), &RingMac);
            assert_eq!(verdict, expected, "{signature} at {now}");
        };
        let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        check(signature, timestamp, Ok(Authenticity::Verified));
        check(
            &format!("v1,bm9wZQ== {signature}"),
            timestamp,
            Ok(Authenticity::Verified),
        );
        check(
            &format!("{signature} v1,bm9wZQ=="),
            timestamp,
            Ok(Authenticity::Verified),
        );
        check("v1,bm9wZQ==", timestamp, Err(AuthFailure::InvalidSignature));
        check(
            signature,
            timestamp + 301,
            Err(AuthFailure::SignatureExpired),
        );
        check(
            signature,
            timestamp - 301,
            Err(AuthFailure::SignatureExpired),
        );

        // The key is the decoded base64, as the reference libraries take it.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let tag = RingMac.sign(
            MacAlgorithm::Sha256,
            &key,
            &[b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.", body],
        );
        assert_eq!(format!("v1,{}", STANDARD.encode(tag)), signature);
    }

    #[test]
    fn stripe_pagerduty_and_shopify_with_real_arithmetic() {
        let secret = Secret::parse("whsec_stripe-test-secret").unwrap();
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let now = 1_700_000_000;
        let sha256 =
            |parts: &[&[u8]]| RingMac.sign(MacAlgorithm::Sha256, secret.expose().as_bytes(), parts);
        let verify = |source, pairs: &[(&str, &str)]| {
            SourceSettings::of(source).verify_body(
                &headers(pairs),
                body,
                &[&secret],
                at(now),
                &RingMac,
            )
        };

        let v1 = hex(&sha256(&[now.to_string().as_bytes(), b".", body]));
        let header = format!(
            "t={now},v1={v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
        );
        assert_eq!(
            verify(Source::Stripe, &[("Stripe-Signature", &header)]),
            Ok(Authenticity::Verified)
        );
        let header = format!("t={},v1={v1}", now + 1);
        assert_eq!(
            verify(Source::Stripe, &[("Stripe-Signature", &header)]),
            Err(AuthFailure::InvalidSignature)
        );

        let header = format!("v1=deadbeef,v1={}", hex(&sha256(&[body])));
        assert_eq!(
            verify(Source::Pagerduty, &[("X-PagerDuty-Signature", &header)]),
            Ok(Authenticity::Verified)
        );

        let header = STANDARD.encode(sha256(&[body]));
        assert_eq!(
            verify(Source::Shopify, &[("X-Shopify-Hmac-Sha256", &header)]),
            Ok(Authenticity::Verified)
        );
    }
}
