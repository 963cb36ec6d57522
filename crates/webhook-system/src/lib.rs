//! Adapters of the domain's system ports: the wall clock (and a manual one for tests), the operating system's random
//! numbers, secret sealing (AES-256-GCM) and API-key hashing (SHA-256), all through `ring`.

mod clock;
mod manual_clock;
mod master_key;
mod secrets;

pub use clock::SystemClock;
pub use manual_clock::ManualClock;
pub use master_key::{MasterKey, MasterKeyError};
pub use secrets::{RingSealer, Sha256KeyHasher, SystemEntropy};
