//! A hub embedded in an application that answers its own request types in Rust.
//!
//! `token.create` stores a token, answers its caller and broadcasts `token.created` to every
//! subscriber of `tokens`; `token.list` answers with the stored tokens. Run it:
//!
//! ```sh
//! cargo run -p wshub-server --example embedded_handler            # 127.0.0.1:8000, or give a port
//! cargo run -p wshub -- connect --subscribe tokens                 # another terminal
//! cargo run -p wshub -- send --type token.create --payload '{"name":"ci"}'
//! cargo run -p wshub -- send --type token.list
//! ```

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;
use wshub_server::config::Config;
use wshub_server::handlers::{Handler, HandlerError, HandlerOptions, HandlerReply, HandlerRequest, HandlerResult};
use wshub_server::{Server, ServerError};

#[derive(Debug, Clone, Serialize)]
struct Token {
    id: String,
    name: String,
    created_by: String,
}

#[derive(Deserialize)]
struct CreateToken {
    #[serde(default)]
    name: String,
}

/// The application's state: the tokens made so far.
#[derive(Default)]
struct TokenService {
    tokens: Mutex<Vec<Token>>,
}

impl TokenService {
    async fn create(&self, request: &HandlerRequest) -> HandlerResult {
        let CreateToken { name } = request
            .payload()
            .map_err(|e| HandlerError::failed(format!("bad token.create payload: {e}")))?;
        if name.trim().is_empty() {
            // A refusal the client should see is a reply of its own type, not an error.
            return Ok(HandlerReply::json(&serde_json::json!({"reason": "name is required"}))?
                .with_type("token.create.rejected"));
        }
        let token = {
            let mut tokens = self
                .tokens
                .lock()
                .map_err(|_| HandlerError::failed("token store poisoned"))?;
            let token = Token {
                id: format!("tok_{}", tokens.len() + 1),
                name,
                created_by: request.user().unwrap_or("anonymous").to_owned(),
            };
            tokens.push(token.clone());
            token
        };
        // Everyone subscribed to `tokens` hears about it; the caller gets the reply below.
        request.publish("tokens", "token.created", &token).await?;
        HandlerReply::json(&serde_json::json!({ "token": token }))
    }

    fn list(&self) -> HandlerResult {
        let tokens = self
            .tokens
            .lock()
            .map_err(|_| HandlerError::failed("token store poisoned"))?;
        HandlerReply::json(&serde_json::json!({ "tokens": *tokens }))
    }
}

impl Handler for TokenService {
    async fn call(&self, request: HandlerRequest) -> HandlerResult {
        match request.kind() {
            "token.create" => self.create(&request).await,
            "token.list" => self.list(),
            other => Err(HandlerError::failed(format!("no operation {other:?}"))),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), ServerError> {
    let mut config = Config::default();
    if let Some(port) = std::env::args().nth(1).and_then(|p| p.parse().ok()) {
        config.server.port = port;
    }
    let server = Server::builder(config)
        .handler_with(
            "token.*",
            TokenService::default(),
            HandlerOptions::default().timeout(Duration::from_secs(2)),
        )
        .bind()
        .await?;
    println!(
        "embedded hub on ws://{}/ws — try `wshub send --type token.create --payload '{{\"name\":\"ci\"}}'`",
        server.local_addr()
    );
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
