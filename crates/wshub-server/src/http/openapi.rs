//! The OpenAPI document of the server API, generated from the handlers' annotations.

use super::api;
use super::binary;
use super::error::{ErrorBody, ErrorDetail};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The server API's OpenAPI description (served at `/api/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    info(title = "wshub server API", description = "Endpoints for backends: publish events and binary frames, inspect channels and presence, disconnect clients."),
    paths(api::publish, binary::publish_binary, api::channels, api::channel, api::history, api::presence, api::disconnect),
    components(schemas(api::PublishRequest, api::RawBody, api::Published, api::PublishedMany, api::Channel, api::Channels,
        api::DisconnectRequest, api::Disconnected, ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API key from auth.api_keys, or an admin JWT"))
            .build();
        components.add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
