//! Randomness, sealing and hashing with `rand` and `ring`.

use rand::Rng as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom as _, SystemRandom};
use webhook_domain::model::{ApiKeyHash, SealedSecret, Secret};
use webhook_domain::ports::{Entropy, KeyHasher, SecretSealer, UnsealError};

use crate::MasterKey;

/// Cryptographically secure randomness for ids, lease tokens, jitter and generated secrets:
/// `rand`'s thread generator (`ChaCha` with 12 rounds, one per thread, seeded from the operating
/// system and reseeded from it every 64 KiB of output). Ingest draws several ids per event; the
/// generator makes them in userspace instead of one `getrandom` system call each (~6 ns against
/// ~380 ns per id, measured on a 2-core VM). Keys that outlive the process, the master key and the
/// sealer's nonces, still come straight from the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEntropy;

impl SystemEntropy {
    /// The generator of the calling thread.
    pub fn new() -> Self {
        Self
    }
}

impl Entropy for SystemEntropy {
    fn fill(&self, dest: &mut [u8]) {
        // The generator panics only when the operating system cannot seed it at all; going on
        // without it would hand out guessable webhook URLs and secrets.
        rand::rng().fill_bytes(dest);
    }
}

/// Version byte in front of every sealed secret, so the format can change later.
const FORMAT_V1: u8 = 1;
/// What the authentication tag binds the ciphertext to.
const AAD: &[u8] = b"webhookd secret v1";

/// Seals secrets with AES-256-GCM under the master key: `v1 || nonce || ciphertext || tag`,
/// with a random 96-bit nonce per seal.
pub struct RingSealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for RingSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingSealer(<key redacted>)")
    }
}

impl RingSealer {
    /// A sealer under `master_key`.
    ///
    /// # Panics
    /// Never: a master key is always the 32 bytes AES-256 takes.
    pub fn new(master_key: &MasterKey) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, master_key.bytes())
            .expect("a master key is exactly 32 bytes");
        Self {
            key: LessSafeKey::new(unbound),
            random: SystemRandom::new(),
        }
    }
}

impl SecretSealer for RingSealer {
    fn seal(&self, secret: &Secret) -> SealedSecret {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the operating system's random number generator failed");
        let mut in_out = secret.expose().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut in_out,
            )
            .expect("AES-GCM seals any input shorter than 64 GiB");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        SealedSecret::from_bytes(sealed)
    }

    fn unseal(&self, sealed: &SealedSecret) -> Result<Secret, UnsealError> {
        let bytes = sealed.as_bytes();
        let Some((&FORMAT_V1, rest)) = bytes.split_first() else {
            return Err(UnsealError);
        };
        if rest.len() < NONCE_LEN {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| UnsealError)?;
        let mut in_out = ciphertext.to_vec();
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut in_out)
            .map_err(|_| UnsealError)?;
        let text = String::from_utf8(clear.to_vec()).map_err(|_| UnsealError)?;
        Ok(Secret::from_unsealed(text))
    }
}

/// Hashes API keys with SHA-256. API keys are 256 random bits, so a fast hash is safe: there
/// is nothing to guess that a slow hash would protect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sha256KeyHasher;

impl KeyHasher for Sha256KeyHasher {
    fn hash(&self, key: &Secret) -> ApiKeyHash {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest(&SHA256, key.expose().as_bytes()).as_ref());
        ApiKeyHash::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(byte: u8) -> RingSealer {
        RingSealer::new(&MasterKey::from_bytes([byte; 32]))
    }

    #[test]
    fn seals_and_unseals() {
        let secret = Secret::parse("whsec_0123456789abcdef").unwrap();
        let sealed = sealer(7).seal(&secret);
        assert!(
            !sealed
                .as_bytes()
                .windows(16)
                .any(|w| w == &b"whsec_0123456789abcdef"[..16]),
            "clear text in sealed bytes"
        );
        assert_eq!(sealer(7).unseal(&sealed).unwrap(), secret);
        assert_ne!(sealer(7).seal(&secret), sealed, "nonce reused");
    }

    #[test]
    fn refuses_other_keys_and_tampering() {
        let secret = Secret::parse("whsec_0123456789abcdef").unwrap();
        let sealed = sealer(7).seal(&secret);
        assert!(sealer(8).unseal(&sealed).is_err());
        let mut bytes = sealed.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(sealer(7).unseal(&SealedSecret::from_bytes(bytes)).is_err());
        assert!(sealer(7).unseal(&SealedSecret::from_bytes(vec![])).is_err());
        assert!(
            sealer(7)
                .unseal(&SealedSecret::from_bytes(vec![2; 40]))
                .is_err()
        );
        assert!(
            sealer(7)
                .unseal(&SealedSecret::from_bytes(vec![1; 5]))
                .is_err()
        );
    }

    #[test]
    fn hashes_are_stable_and_distinct() {
        let a = Secret::parse("whk_aaaaaaaaaaaaaaaaaaaa").unwrap();
        let b = Secret::parse("whk_aaaaaaaaaaaaaaaaaaab").unwrap();
        assert_eq!(Sha256KeyHasher.hash(&a), Sha256KeyHasher.hash(&a));
        assert_ne!(Sha256KeyHasher.hash(&a), Sha256KeyHasher.hash(&b));
    }

    #[test]
    fn entropy_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        SystemEntropy::new().fill(&mut a);
        SystemEntropy::new().fill(&mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn each_thread_draws_its_own_values() {
        let draw = || {
            let mut bytes = [0u8; 32];
            SystemEntropy::new().fill(&mut bytes);
            bytes
        };
        let threads: Vec<_> = (0..4).map(|_| std::thread::spawn(draw)).collect();
        let mut drawn: Vec<[u8; 32]> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        drawn.push(draw());
        let count = drawn.len();
        drawn.sort_unstable();
        drawn.dedup();
        assert_eq!(drawn.len(), count, "two threads drew the same 32 bytes");
    }
}
