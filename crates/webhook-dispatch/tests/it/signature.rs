//! Signatures verify with an implementation of the Standard Webhooks spec written here from
//! the spec's text, on a different HMAC implementation than the dispatcher's.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use webhook_dispatch::standard_form;
use webhook_domain::model::Secret;
use webhook_domain::ports::Clock as _;
use webhook_store_mem::MemoryStore;

use crate::support::{
    Received, TargetServer, World, clock, delivery_config, dispatch_config, dispatcher,
    generated_secret,
};

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    MissingHeader,
    BadSecret,
    StaleTimestamp,
    NoMatchingSignature,
}

/// Verification as the spec describes it: the secret is `whsec_` + base64 of the key; the
/// signed content is `{webhook-id}.{webhook-timestamp}.{body}`; `webhook-signature` holds
/// space-separated `v1,<base64 HMAC-SHA256>` entries, any of which may match; the timestamp
/// must be within five minutes of now.
fn verify(secret: &str, request: &Received) -> Result<(), Refusal> {
    let id = request
        .headers
        .get("webhook-id")
        .ok_or(Refusal::MissingHeader)?;
    let timestamp = request
        .headers
        .get("webhook-timestamp")
        .ok_or(Refusal::MissingHeader)?;
    let signatures = request
        .headers
        .get("webhook-signature")
        .ok_or(Refusal::MissingHeader)?
        .to_str()
        .map_err(|_| Refusal::MissingHeader)?;
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or(Refusal::BadSecret)?)
        .map_err(|_| Refusal::BadSecret)?;
    let sent: i64 = timestamp
        .to_str()
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(Refusal::StaleTimestamp)?;
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("seconds fit");
    if (now - sent).abs() > 300 {
        return Err(Refusal::StaleTimestamp);
    }
    for entry in signatures.split(' ') {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        let Ok(signature) = STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&request.body);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err(Refusal::NoMatchingSignature)
}

async fn delivered_with(secret: &Secret) -> Received {
    let server = TargetServer::ok().await;
    let store = MemoryStore::new();
    let clock = clock();
    let world = World::seed(&store, &server.url("/"), secret).await;
    world.enqueue(&store, 1, clock.now()).await;
    dispatcher(store, &clock, delivery_config(), dispatch_config())
        .run_once()
        .await
        .expect("the store answers");
    server.received().remove(0)
}

#[tokio::test]
async fn a_standard_form_secret_verifies_as_stored() {
    let secret = Secret::from_unsealed(format!("whsec_{}", STANDARD.encode([0xFB; 32])));
    let request = delivered_with(&secret).await;
    assert_eq!(verify(secret.expose(), &request), Ok(()));
}

#[tokio::test]
async fn a_generated_secret_verifies_as_shown() {
    // 0xFB bytes make base64 whose URL-safe and standard alphabets differ.
    let secret = generated_secret(0xFB);
    let request = delivered_with(&secret).await;
    assert_eq!(verify(secret.expose(), &request), Ok(()));
    assert_eq!(standard_form(&secret), secret);
}

#[tokio::test]
async fn a_secret_of_the_earlier_generated_form_verifies_in_its_standard_form() {
    // Earlier versions generated `whsec_` + unpadded URL-safe base64.
    let secret = Secret::from_random(webhook_dispatch::SECRET_PREFIX, &[0xFB; 32]);
    let request = delivered_with(&secret).await;
    let standard = standard_form(&secret);
    assert_eq!(verify(standard.expose(), &request), Ok(()));
    // A strict standard decoder refuses the URL-safe, unpadded text itself.
    assert_eq!(verify(secret.expose(), &request), Err(Refusal::BadSecret));
}

#[tokio::test]
async fn a_tampered_body_or_another_key_does_not_verify() {
    let secret = generated_secret(0x42);
    let mut request = delivered_with(&secret).await;
    let standard = standard_form(&secret);
    let other = standard_form(&generated_secret(0x43));
    assert_eq!(
        verify(other.expose(), &request),
        Err(Refusal::NoMatchingSignature)
    );
    let mut body = request.body.to_vec();
    body.push(b' ');
    request.body = body.into();
    assert_eq!(
        verify(standard.expose(), &request),
        Err(Refusal::NoMatchingSignature)
    );
}
