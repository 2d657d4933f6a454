//! `GET /health`: the server is up, and what each library serves.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::startup::AppState;

/// Liveness plus each library's served version and record count.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Up, with each library's served version and record count", body = crate::openapi::Health),
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let mut libraries = serde_json::Map::new();
    for (name, library) in state.libraries.all() {
        libraries.insert(
            name.to_string(),
            json!({
                "version": library.version().ok(),
                "records": library.len().ok(),
            }),
        );
    }
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "libraries": libraries,
    }))
}
