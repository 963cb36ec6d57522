//! Adapters of the domain's system ports: the wall clock (and a manual one for tests), the
//! operating system's random numbers, secret sealing (AES-256-GCM), API-key hashing (SHA-256) and
//! the senders' signature HMACs, all through `ring`; and instruction templates through
//! `minijinja`.

mod clock;
mod mac;
mod manual_clock;
mod master_key;
mod secrets;
mod template;

pub use clock::SystemClock;
pub use mac::RingMac;
pub use manual_clock::ManualClock;
pub use master_key::{MasterKey, MasterKeyError};
pub use secrets::{RingSealer, Sha256KeyHasher, SystemEntropy};
pub use template::MiniJinjaTemplates;
