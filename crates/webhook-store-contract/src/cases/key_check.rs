//! Cases of `KeyCheckStore`: the master key's check, kept once per store.

use webhook_domain::model::SealedSecret;

use crate::ContractStore;
use crate::fixtures::all_ok;

/// A sealed check as a sealer would make it: a version byte, a nonce, the text and a tag.
fn check(seed: u8) -> SealedSecret {
    let mut bytes = vec![1];
    bytes.extend((0..56u8).map(|i| i.wrapping_mul(31).wrapping_add(seed)));
    SealedSecret::from_bytes(bytes)
}

/// The first check is kept and returned as given; a later, different check is not kept, and
/// every later call returns the first.
pub async fn the_first_key_check_is_kept<S: ContractStore>(store: S) {
    let first = check(1);
    let kept = store.keep_key_check(&first).await.expect("first check");
    assert_eq!(kept.as_bytes(), first.as_bytes(), "the first check");
    for later in [check(2), check(1), check(3)] {
        let kept = store.keep_key_check(&later).await.expect("later check");
        assert_eq!(kept.as_bytes(), first.as_bytes(), "a later call");
    }
}

/// Nodes starting together on one empty store: exactly one of their checks is kept, and every
/// one of them is told that one.
pub async fn concurrent_first_key_checks_keep_one<S: ContractStore>(store: S) {
    let mut calls = tokio::task::JoinSet::new();
    for seed in 0..8 {
        let store = store.clone();
        calls.spawn(async move { store.keep_key_check(&check(seed)).await });
    }
    let kept = all_ok(calls, "concurrent check").await;
    let first = &kept[0];
    assert!(
        (0..8).any(|seed| check(seed) == *first),
        "the kept check is one of those given"
    );
    assert!(
        kept.iter().all(|k| k == first),
        "every call sees the one kept"
    );
    let later = store
        .keep_key_check(&check(100))
        .await
        .expect("later check");
    assert_eq!(later.as_bytes(), first.as_bytes());
}
