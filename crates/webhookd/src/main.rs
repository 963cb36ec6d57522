//! The `webhookd` binary: parses the command line and the configuration, builds and runs a node
//! through the library, and prints what a command returns. No logic lives here.

use anyhow::Context as _;
use clap::Parser as _;
use serde_json::json;
use webhook_domain::model::Organization;
use webhook_domain::service::NewOrganization;
use webhook_domain::service::manage::NewApiKey;
use webhookd::config::{ApiKeyCommand, Cli, Command, Config, LogFormat, OrgCommand};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.settings)?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command.unwrap_or(Command::Serve), &config))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn run(command: Command, config: &Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => webhookd::serve(config, print_first_start).await,
        Command::Migrate => {
            webhookd::migrate(config).await?;
            tracing::info!("the database is migrated");
            Ok(())
        }
        Command::Org(OrgCommand::Create { name }) => {
            let created = webhookd::create_organization(config, &name).await?;
            print_json(&json!({
                "organization": organization_json(&created.organization),
                "api_key": created.api_key().expose(),
            }));
            Ok(())
        }
        Command::Org(OrgCommand::List) => {
            for organization in webhookd::organizations(config).await? {
                print_json(&organization_json(&organization));
            }
            Ok(())
        }
        Command::ApiKey(ApiKeyCommand::Create {
            organization,
            name,
            role,
        }) => {
            let new = NewApiKey {
                name,
                role: role.as_str().to_owned(),
            };
            let created = webhookd::create_api_key(config, &organization, new).await?;
            print_json(&json!({
                "id": created.key.id,
                "organization_id": created.key.organization_id,
                "name": created.key.name.as_str(),
                "role": created.key.role.as_str(),
                "created_at": created.key.created_at,
                "api_key": created.api_key.expose(),
            }));
            Ok(())
        }
    }
}

#[expect(clippy::print_stdout, reason = "the command's output is its result")]
fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

fn organization_json(organization: &Organization) -> serde_json::Value {
    json!({
        "id": organization.id,
        "name": organization.name.as_str(),
        "rate_limit_per_minute": organization.rate_limit_per_minute.get(),
        "created_at": organization.created_at,
        "updated_at": organization.updated_at,
    })
}

#[expect(
    clippy::print_stdout,
    reason = "the admin key is shown to the operator once"
)]
fn print_first_start(created: &NewOrganization) {
    println!(
        "\nwebhookd: created organization {:?} ({}).\nIts admin API key, shown only this once:\n\n    {}\n\nKeep it: it is stored only as a hash.\n",
        created.organization.name.as_str(),
        created.organization.id,
        created.api_key().expose(),
    );
}
