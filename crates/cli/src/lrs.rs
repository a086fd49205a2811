//! `coachloop lrs`: LRS credentials, the key and secret an LMS sends xAPI statements with
//! (HTTP Basic auth against `/xapi`).

use crate::{DataArgs, account_id, load, open_store};
use clap::Subcommand;
use coachloop_core::time::format_ms;
use coachloop_server::api::xapi::lrs_scope_list;
use coachloop_store::tokens::NewToken;

#[derive(Debug, Subcommand)]
pub enum LrsCommand {
    /// Create a credential and print its key and secret (the secret is shown once).
    Create {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        /// What it is for (the LMS); unique among the account's live tokens.
        #[arg(long)]
        name: String,
        /// `read`, `write` or `read,write`.
        #[arg(long, default_value = "read,write")]
        scopes: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List credentials (never their secrets).
    List {
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a credential by its key.
    Revoke {
        key: String,
        #[arg(long, default_value = coachloop_store::DEFAULT_ACCOUNT)]
        account: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

pub async fn run(command: LrsCommand) -> anyhow::Result<()> {
    match command {
        LrsCommand::Create {
            account,
            name,
            scopes,
            data,
        } => {
            let names: Vec<String> = scopes.split(',').map(str::to_owned).collect();
            let scopes =
                lrs_scope_list(Some(&names)).map_err(|e| anyhow::anyhow!("--scopes: {e}"))?;
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            let new = NewToken {
                name,
                scopes,
                expires_at: None,
                limits: Default::default(),
                lrs: true,
            };
            let (token, secret) = store.create_token(account, &new).await?;
            eprintln!(
                "created LRS credential `{}` ({}); use the key as the user name and the secret \
                 as the password of HTTP Basic auth; the secret is shown this once:",
                token.name,
                token.scopes.to_list()
            );
            println!("key: {}", token.lrs_key.unwrap_or_default());
            println!("secret: {secret}");
        }
        LrsCommand::List { account, data } => {
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            println!("key\tname\tscopes\tlast used\tstate");
            for token in store.list_tokens(account).await? {
                let Some(key) = &token.lrs_key else { continue };
                let state = match token.revoked_at {
                    Some(at) => format!("revoked {}", format_ms(at)),
                    None => "live".to_owned(),
                };
                println!(
                    "{key}\t{}\t{}\t{}\t{state}",
                    token.name,
                    token.scopes.to_list(),
                    token
                        .last_used_at
                        .map(format_ms)
                        .unwrap_or_else(|| "never".into()),
                );
            }
        }
        LrsCommand::Revoke { key, account, data } => {
            let store = open_store(&load(&data, None)?).await?;
            let account = account_id(&store, &account).await?;
            store
                .revoke_lrs_credential(account, &key)
                .await
                .map_err(|e| match e {
                    coachloop_store::StoreError::NotFound(_) => {
                        anyhow::anyhow!(
                            "no live LRS credential with the key `{key}` in this account"
                        )
                    }
                    other => other.into(),
                })?;
            println!("revoked LRS credential `{key}`");
        }
    }
    Ok(())
}
