//! The senders' dialects ("Sources" in the design) as pure rules over a request's headers, its
//! body, the webhook's secrets and the time: how each sender authenticates, which body
//! formats it posts, and where its event type, delivery id and instruction are.
//!
//! They are methods of [`SourceSettings`], in the order ingest uses them:
//! 1. [`SourceSettings::authenticate_head`] before the body is read (secret headers, Bearer,
//!    Basic); it answers [`HeadCheck::AwaitBody`] for the sources that sign the body,
//! 2. [`SourceSettings::verify_body`] once it is read (HMAC signatures and their timestamps),
//! 3. [`SourceSettings::payload_json`] to turn the body into the JSON object to store (forms
//!    included),
//! 4. [`SourceSettings::extract`] over the parsed payload: a handshake to answer, or the
//!    event's type, delivery id and instruction.
//!
//! HMAC arithmetic goes through the [`crate::ports::SignatureMac`] port and templates through
//! [`crate::ports::InstructionTemplates`]; nothing here does I/O.
//!
//! [`SourceSettings`]: crate::model::SourceSettings

mod auth;
mod body;
mod extract;

pub use auth::{AuthFailure, AuthStage, Authenticity, HeadCheck, SIGNATURE_TOLERANCE};
pub use body::{BodyRefused, MediaType};
pub use extract::{
    EventFields, Extraction, Handshake, InstructionOrigin, MAX_DELIVERY_ID_BYTES,
    MAX_INSTRUCTION_BYTES, TemplateFallback, cap_instruction,
};

#[cfg(test)]
mod testing {
    //! A stand-in for the HMAC port whose "tag" spells out what was signed, so the tests can
    //! say exactly which bytes each source signs; the real arithmetic is tested against the
    //! providers' published vectors in `webhook-system`.

    use subtle::ConstantTimeEq as _;

    use crate::model::MacAlgorithm;
    use crate::ports::SignatureMac;

    #[derive(Debug)]
    pub(super) struct SpellingMac;

    impl SignatureMac for SpellingMac {
        fn sign(&self, algorithm: MacAlgorithm, key: &[u8], message: &[&[u8]]) -> Vec<u8> {
            let mut tag = format!("{}|", algorithm.as_str()).into_bytes();
            tag.extend_from_slice(key);
            tag.push(b'|');
            for part in message {
                tag.extend_from_slice(part);
            }
            tag
        }

        fn verify(
            &self,
            algorithm: MacAlgorithm,
            key: &[u8],
            message: &[&[u8]],
            tag: &[u8],
        ) -> bool {
            self.sign(algorithm, key, message).ct_eq(tag).into()
        }
    }

    /// Lower-case hex.
    pub(super) fn hex(bytes: &[u8]) -> String {
        use std::fmt::Write as _;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// Standard padded base64.
    pub(super) fn base64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Headers from `(name, value)` pairs.
    pub(super) fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec()))
            .collect()
    }
}
