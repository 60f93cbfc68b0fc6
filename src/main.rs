//! The `contract-recon` command line.

fn main() {}
