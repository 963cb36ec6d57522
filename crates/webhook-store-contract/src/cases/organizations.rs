//! Cases of `OrganizationStore`: organizations and API keys.

use webhook_domain::model::{ApiKey, Organization};
use webhook_domain::ports::OrganizationInsert;

use super::{assert_conflict, assert_not_found};
use crate::ContractStore;
use crate::fixtures::{api_key, at, at_micros, name, organization, rate, stored_organization};

/// An organization reads back as written, and its updates replace name, limit and `updated_at`.
pub async fn organizations_round_trip<S: ContractStore>(store: S) {
    assert_eq!(store.count_organizations().await.expect("count"), 0);
    let mut org = stored_organization(&store).await;
    assert_eq!(store.organization(org.id).await.expect("read"), org);
    assert_eq!(store.count_organizations().await.expect("count"), 1);

    org.name = name("Acme Corp");
    org.rate_limit_per_minute = rate(42);
    org.updated_at = at_micros(5_000_001);
    store.update_organization(&org).await.expect("update");
    assert_eq!(store.organization(org.id).await.expect("read"), org);

    store
        .insert_organization(&organization(at(1)))
        .await
        .expect("insert a second");
    assert_eq!(store.count_organizations().await.expect("count"), 2);
}

/// Reading or updating an organization that does not exist is `NotFound`.
pub async fn missing_organization_is_not_found<S: ContractStore>(store: S) {
    let other = organization(at(1));
    assert_not_found(store.organization(other.id).await, "organization");
    assert_not_found(
        store.update_organization(&other).await,
        "update_organization",
    );
    assert_eq!(store.count_organizations().await.expect("count"), 0);
}

/// Inserting an organization whose id exists is a `Conflict` and changes nothing.
pub async fn insert_organization_twice_conflicts<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let again = Organization {
        name: name("Impostor"),
        ..org.clone()
    };
    assert_conflict(store.insert_organization(&again).await, "second insert");
    assert_eq!(store.organization(org.id).await.expect("read"), org);
    assert_eq!(store.count_organizations().await.expect("count"), 1);
}

/// A key is found by its hash until it is deleted.
pub async fn api_key_by_hash<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let key = api_key(&org, at(1));
    store.insert_api_key(&key).await.expect("insert key");
    assert_eq!(
        store.api_key_by_hash(&key.hash).await.expect("by hash"),
        key
    );
    assert_not_found(
        store.api_key_by_hash(&api_key(&org, at(1)).hash).await,
        "unknown hash",
    );
    store
        .delete_api_key(org.id, key.id)
        .await
        .expect("delete key");
    assert_not_found(store.api_key_by_hash(&key.hash).await, "deleted key");
    assert!(store.api_keys(org.id).await.expect("list").is_empty());
}

/// A key whose id or hash is stored is a `Conflict`; a key of a missing organization is
/// `NotFound`.
pub async fn insert_api_key_conflicts_on_id_or_hash<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let key = api_key(&org, at(1));
    store.insert_api_key(&key).await.expect("insert key");
    let same_id = ApiKey {
        hash: api_key(&org, at(1)).hash,
        ..key.clone()
    };
    assert_conflict(store.insert_api_key(&same_id).await, "same id");
    let same_hash = ApiKey {
        id: api_key(&org, at(1)).id,
        ..key.clone()
    };
    assert_conflict(store.insert_api_key(&same_hash).await, "same hash");
    assert_eq!(store.api_keys(org.id).await.expect("list"), vec![key]);

    let stranger = organization(at(0));
    assert_not_found(
        store.insert_api_key(&api_key(&stranger, at(1))).await,
        "key of a missing organization",
    );
}

/// An organization's keys are listed oldest first, and only its own.
pub async fn api_keys_are_listed_oldest_first<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let other = stored_organization(&store).await;
    let newest = api_key(&org, at(30));
    let oldest = api_key(&org, at_micros(1));
    let middle = api_key(&org, at_micros(2));
    for key in [&newest, &oldest, &middle, &api_key(&other, at(0))] {
        store.insert_api_key(key).await.expect("insert key");
    }
    assert_eq!(
        store.api_keys(org.id).await.expect("list"),
        vec![oldest, middle, newest]
    );
}

/// Deleting a key of another organization, or a missing key, is `NotFound` and keeps the key.
pub async fn delete_api_key_of_another_organization_is_not_found<S: ContractStore>(store: S) {
    let org = stored_organization(&store).await;
    let other = stored_organization(&store).await;
    let key = api_key(&org, at(1));
    store.insert_api_key(&key).await.expect("insert key");
    assert_not_found(
        store.delete_api_key(other.id, key.id).await,
        "delete from another organization",
    );
    assert_eq!(
        store.api_key_by_hash(&key.hash).await.expect("still there"),
        key
    );
    store.delete_api_key(org.id, key.id).await.expect("delete");
    assert_not_found(store.delete_api_key(org.id, key.id).await, "delete twice");
}

/// Every organization is listed, oldest first.
pub async fn organizations_are_listed_oldest_first<S: ContractStore>(store: S) {
    assert!(store.organizations().await.expect("list").is_empty());
    let newest = organization(at(30));
    let oldest = organization(at_micros(1));
    let middle = organization(at_micros(2));
    for o in [&newest, &oldest, &middle] {
        store.insert_organization(o).await.expect("insert");
    }
    assert_eq!(
        store.organizations().await.expect("list"),
        vec![oldest, middle, newest]
    );
}

/// An organization and its first key are created together and read back as written.
pub async fn organization_with_key_is_created_together<S: ContractStore>(store: S) {
    let org = organization(at(0));
    let key = api_key(&org, at(0));
    assert!(
        store
            .insert_organization_with_key(&org, &key, OrganizationInsert::Always)
            .await
            .expect("insert")
    );
    assert_eq!(store.organization(org.id).await.expect("read"), org);
    assert_eq!(store.api_keys(org.id).await.expect("keys"), vec![key]);

    // `Always` creates one more whatever exists.
    let second = organization(at(1));
    assert!(
        store
            .insert_organization_with_key(
                &second,
                &api_key(&second, at(1)),
                OrganizationInsert::Always
            )
            .await
            .expect("insert a second")
    );
    assert_eq!(store.count_organizations().await.expect("count"), 2);
}

/// An organization id or a key id or hash already stored is a `Conflict`, and then neither the
/// organization nor the key is written.
pub async fn organization_with_key_conflicts_and_writes_nothing<S: ContractStore>(store: S) {
    let org = organization(at(0));
    let key = api_key(&org, at(0));
    store
        .insert_organization_with_key(&org, &key, OrganizationInsert::Always)
        .await
        .expect("insert");

    // The organization's id exists: the new key must not be written.
    let impostor = Organization {
        name: name("Impostor"),
        ..org.clone()
    };
    let fresh_key = api_key(&impostor, at(1));
    assert_conflict(
        store
            .insert_organization_with_key(&impostor, &fresh_key, OrganizationInsert::Always)
            .await,
        "same organization id",
    );
    assert_not_found(
        store.api_key_by_hash(&fresh_key.hash).await,
        "key of a refused insert",
    );
    assert_eq!(store.organization(org.id).await.expect("read"), org);

    // The key's hash, or its id, exists: the new organization must not be written.
    let other = organization(at(2));
    let same_hash = ApiKey {
        hash: key.hash,
        ..api_key(&other, at(2))
    };
    let same_id = ApiKey {
        id: key.id,
        ..api_key(&other, at(2))
    };
    for (clash, what) in [(same_hash, "same key hash"), (same_id, "same key id")] {
        assert_conflict(
            store
                .insert_organization_with_key(&other, &clash, OrganizationInsert::Always)
                .await,
            what,
        );
    }
    assert_not_found(
        store.organization(other.id).await,
        "organization of a refused insert",
    );
    assert_eq!(store.count_organizations().await.expect("count"), 1);
    assert_eq!(store.api_keys(org.id).await.expect("keys"), vec![key]);
}

/// `FirstOnly` creates an organization only on an empty store, and of concurrent first-only
/// calls exactly one does.
pub async fn first_organization_is_created_once<S: ContractStore>(store: S) {
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        calls.spawn(async move {
            let org = organization(at(0));
            let key = api_key(&org, at(0));
            store
                .insert_organization_with_key(&org, &key, OrganizationInsert::FirstOnly)
                .await
                .expect("first-only insert")
        });
    }
    let mut created = 0;
    while let Some(result) = calls.join_next().await {
        if result.expect("the call ran") {
            created += 1;
        }
    }
    assert_eq!(created, 1, "concurrent first starts");
    assert_eq!(store.count_organizations().await.expect("count"), 1);

    let late = organization(at(5));
    let late_key = api_key(&late, at(5));
    assert!(
        !store
            .insert_organization_with_key(&late, &late_key, OrganizationInsert::FirstOnly)
            .await
            .expect("a later first-only insert")
    );
    assert_not_found(store.organization(late.id).await, "declined organization");
    assert_not_found(store.api_key_by_hash(&late_key.hash).await, "declined key");
}
