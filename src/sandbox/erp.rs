//! The sandbox ERP API.

use crate::sandbox::server::AppState;
use axum::Router;

/// ERP routes.
pub(crate) fn router(_state: AppState) -> Router<AppState> {
    Router::new()
}
