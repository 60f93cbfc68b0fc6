//! SpotDraft API: models, client, complete page walk.

pub mod model;
