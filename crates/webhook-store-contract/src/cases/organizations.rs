//! Cases of `OrganizationStore`: organizations and API keys.

use webhook_domain::ports::StoreError;

use crate::ContractStore;
use crate::fixtures::{api_key, at, name, organization, rate};

/// An organization reads back as written, and its updates replace name, limit and `updated_at`.
pub async fn organizations_round_trip<S: ContractStore>(store: S) {
    assert_eq!(store.count_organizations().await.expect("count"), 0);
    let mut org = organization(at(0));
    store.insert_organization(&org).await.expect("insert");
    assert_eq!(store.organization(org.id).await.expect("read"), org);
    assert_eq!(store.count_organizations().await.expect("count"), 1);

    org.name = name("Acme Corp");
    org.rate_limit_per_minute = rate(42);
    org.updated_at = at(5);
    store.update_organization(&org).await.expect("update");
    assert_eq!(store.organization(org.id).await.expect("read"), org);

    let other = organization(at(1));
    assert!(matches!(
        store.organization(other.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_organization(&other).await,
        Err(StoreError::NotFound)
    ));
}

/// A key is found by its hash until it is deleted.
pub async fn api_key_by_hash<S: ContractStore>(store: S) {
    let org = organization(at(0));
    store.insert_organization(&org).await.expect("insert org");
    let key = api_key(&org, at(1));
    store.insert_api_key(&key).await.expect("insert key");
    assert_eq!(
        store.api_key_by_hash(&key.hash).await.expect("by hash"),
        key
    );
    assert!(matches!(
        store.api_key_by_hash(&api_key(&org, at(1)).hash).await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_api_key(org.id, key.id)
        .await
        .expect("delete key");
    assert!(matches!(
        store.api_key_by_hash(&key.hash).await,
        Err(StoreError::NotFound)
    ));
}
