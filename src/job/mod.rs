//! Job files: raw TOML structs validated once into a typed job.
