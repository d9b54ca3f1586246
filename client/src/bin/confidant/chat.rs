//! `confidant chat URL "prompt"`: attest the enclave, then stream the answer to the terminal.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use futures_util::StreamExt;

use confidant_wire::openai::{ChatMessage, ChatRequest};

use crate::clientconf::ClientArgs;

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Enclave base URL, `https://host:port`.
    url: String,
    /// The user message.
    prompt: String,
    /// Model id (default: the attested model).
    #[arg(long)]
    model: Option<String>,
    /// System message.
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    #[arg(long)]
    temperature: Option<f32>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(args: ChatArgs) -> Result<()> {
    let client = args.client.builder(&args.url)?.build()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        eprintln!("attesting {} …", args.url);
        let mut conn = client.connect().await?;
        let claims = conn.claims();
        eprintln!(
            "attested: model {} ({}), measurement {}{}",
            claims.result.model_id,
            if claims.session.is_some() {
                "fresh session"
            } else {
                "certificate"
            },
            hex::encode(&claims.result.measurement),
            if claims.is_dev() {
                " — DEVELOPMENT evidence"
            } else {
                ""
            },
        );
        let model = args
            .model
            .clone()
            .unwrap_or_else(|| claims.result.model_id.clone());
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(args.prompt.clone()));
        let mut request = ChatRequest::new(model, messages).max_tokens(args.max_tokens);
        request.temperature = args.temperature;
        let mut stream = conn.chat_stream(request).await?;
        let mut out = std::io::stdout().lock();
        while let Some(delta) = stream.next().await {
            out.write_all(delta?.content.as_bytes())?;
            out.flush()?;
        }
        writeln!(out)?;
        Ok(())
    })
}
