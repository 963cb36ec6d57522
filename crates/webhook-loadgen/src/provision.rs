//! `provision`: readies one organization for a run through the management API and prints the
//! `URL SECRET SOURCE` lines of its webhooks.

use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};
use hyper::{Method, StatusCode, Uri};
use serde_json::{Value, json};

use crate::ProvisionArgs;
use crate::client::Server;

/// Raises the organization's limit, creates one agent target and `args.webhooks` webhooks on it,
/// each with the raised limit and a secret. The target's endpoint is `args.endpoint_url`; without
/// one its tasks wait on the board and are never dispatched.
pub(crate) async fn provision(args: &ProvisionArgs) -> Result<()> {
    let base: Uri = args
        .base_url
        .parse()
        .with_context(|| format!("--base-url {:?} is not a URL", args.base_url))?;
    let server = Server::of(&base).await?;
    let mut sender = server.connect().await?;
    let key = args.api_key.as_str();
    let limit = args.rate_limit;

    let (status, organization) = server
        .call_json(
            &mut sender,
            Method::PATCH,
            "/api/v1/organization",
            key,
            &json!({ "rate_limit_per_minute": limit }),
        )
        .await?;
    expect(
        status,
        StatusCode::OK,
        "raising the organization's limit",
        &organization,
    )?;
    let organization_name = organization["name"].as_str().unwrap_or("organization");

    let mut new_target =
        json!({ "kind": "agent", "name": format!("{organization_name} load target") });
    if let Some(endpoint) = &args.endpoint_url {
        new_target["endpoint_url"] = json!(endpoint);
    }
    let (status, target) = server
        .call_json(
            &mut sender,
            Method::POST,
            "/api/v1/targets",
            key,
            &new_target,
        )
        .await?;
    expect(status, StatusCode::CREATED, "creating the target", &target)?;
    let target_id = target["id"].as_str().context("the target has no id")?;

    let mut lines = String::new();
    for n in 0..args.webhooks {
        let (status, webhook) = server
            .call_json(
                &mut sender,
                Method::POST,
                "/api/v1/webhooks",
                key,
                &json!({
                    "name": format!("load {n}"),
                    "target_id": target_id,
                    "generate_secret": true,
                    "rate_limit_per_minute": limit,
                    "source": args.source,
                }),
            )
            .await?;
        expect(status, StatusCode::CREATED, "creating a webhook", &webhook)?;
        let url = webhook["url"].as_str().context("the webhook has no url")?;
        let secret = webhook["secret"]
            .as_str()
            .context("the webhook was created without its secret")?;
        writeln!(lines, "{url} {secret} {}", args.source)?;
    }
    print!("{lines}");
    Ok(())
}

fn expect(status: StatusCode, wanted: StatusCode, doing: &str, body: &Value) -> Result<()> {
    if status != wanted {
        bail!("{doing}: the server answered {status}: {body}");
    }
    Ok(())
}
