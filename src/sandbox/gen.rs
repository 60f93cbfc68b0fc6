//! Deterministic fixture generator.
