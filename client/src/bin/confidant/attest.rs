//! `confidant attest URL`: attest an enclave and print the verified claims as JSON, or the check
//! that failed (non-zero exit).

use anyhow::{Context, Result};
use clap::Args;

use crate::clientconf::ClientArgs;

#[derive(Debug, Args)]
pub struct AttestArgs {
    /// Enclave base URL, `https://host:port`.
    url: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: AttestArgs) -> Result<()> {
    let client = args.client.builder(&args.url)?.build()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    eprintln!("attesting {} …", args.url);
    let claims = runtime.block_on(async {
        let conn = client.connect().await?;
        Ok::<_, confidant_client::ClientError>(conn.claims().clone())
    })?;
    if claims.is_dev() {
        eprintln!("WARNING: the enclave runs on DEVELOPMENT evidence (simulated TEE)");
    }
    println!("{}", serde_json::to_string_pretty(&claims)?);
    Ok(())
}
