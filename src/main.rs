//! The `contract-recon` command line: parses arguments, loads jobs, calls the library.
//!
//! Exit codes: 0 success, 1 run failed, 2 invalid usage or job file, 3 drift found
//! with `--fail-on-drift`.

use clap::{Args, Parser, Subcommand};
use contract_recon::ingest::IngestMode;
use contract_recon::job::{load_job, Job};
use contract_recon::runner::{self, RunOptions};
use contract_recon::sandbox::{self, Dataset, Sandbox, SandboxConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Keeps SpotDraft contracts and an ERP in agreement: ingest, reconcile, report.
#[derive(Parser)]
#[command(name = "contract-recon", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check job files; print every problem as `file: key: reason`.
    Validate {
        /// Job files (TOML).
        #[arg(required = true)]
        jobs: Vec<PathBuf>,
    },
    /// Run a job once: ingest contracts, load the ERP extract, reconcile, write reports.
    Run(RunArgs),
    /// Run jobs/demo.toml against the embedded sandbox and print where the report is.
    Demo {
        /// The demo job file.
        #[arg(long, default_value = "jobs/demo.toml")]
        job: PathBuf,
        /// Write the reports here instead of the job's `output.url` (`out/demo`).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Serve the local SpotDraft and ERP sandbox until Ctrl-C.
    Sandbox {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Fixture dataset folder.
        #[arg(long, default_value = "fixtures/demo")]
        fixtures: PathBuf,
        /// Requests per second allowed per workspace.
        #[arg(long, default_value_t = 10)]
        rate_limit: u32,
    },
    /// Fixture datasets.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The job file.
    job: PathBuf,
    /// Exit with 3 when any drift is found.
    #[arg(long)]
    fail_on_drift: bool,
    /// Walk every contract even when an earlier run left a watermark.
    #[arg(long, conflicts_with = "incremental")]
    full: bool,
    /// Only fetch contracts changed since the last watermark (fails without one).
    #[arg(long)]
    incremental: bool,
}

#[derive(Subcommand)]
enum FixturesCommand {
    /// Write a deterministic dataset: contracts, documents, ERP extract, expected drift.
    Gen {
        /// Number of contracts.
        #[arg(long)]
        contracts: u64,
        /// Random seed: the same seed writes the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Also write snapshot.parquet (the ingestion stage's output) for benchmarks.
        #[arg(long)]
        snapshot: bool,
        /// Write executed documents (default: on up to 10,000 contracts).
        #[arg(long)]
        documents: Option<bool>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONTRACT_RECON_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Validate { jobs } => validate(&jobs),
        Command::Run(args) => {
            let Some(job) = load_or_report(&args.job) else {
                return ExitCode::from(2);
            };
            let mode = if args.full {
                IngestMode::Full
            } else if args.incremental {
                IngestMode::Incremental
            } else {
                IngestMode::Auto
            };
            run(
                &job,
                RunOptions {
                    mode,
                    ..RunOptions::default()
                },
                args.fail_on_drift,
            )
            .await
        }
        Command::Demo { job, output } => {
            let path = locate_demo_job(&job);
            let Some(mut job) = load_or_report(&path) else {
                return ExitCode::from(2);
            };
            if let Some(dir) = output {
                match std::fs::create_dir_all(&dir).and_then(|_| dir.canonicalize()) {
                    Ok(dir) => job.output.url = dir.display().to_string(),
                    Err(e) => {
                        eprintln!("error: --output {}: {e}", dir.display());
                        return ExitCode::from(2);
                    }
                }
            }
            run(&job, RunOptions::default(), false).await
        }
        Command::Sandbox {
            listen,
            fixtures,
            rate_limit,
        } => serve_sandbox(listen, &fixtures, rate_limit).await,
        Command::Fixtures {
            command:
                FixturesCommand::Gen {
                    contracts,
                    seed,
                    out,
                    snapshot,
                    documents,
                },
        } => {
            let opts = sandbox::gen::GenOptions {
                contracts,
                seed,
                out: out.clone(),
                documents,
                snapshot,
            };
            match tokio::task::spawn_blocking(move || sandbox::gen::generate(&opts)).await {
                Ok(Ok(summary)) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&summary).unwrap_or_default()
                    );
                    println!("wrote {}", out.display());
                    ExitCode::SUCCESS
                }
                Ok(Err(e)) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("error: fixture generation stopped: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    let mut invalid = false;
    for path in paths {
        match load_job(path) {
            Ok(job) => println!("{}: ok (job {:?})", path.display(), job.name),
            Err(problems) => {
                invalid = true;
                for p in &problems.0 {
                    println!("{p}");
                }
            }
        }
    }
    if invalid {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn load_or_report(path: &Path) -> Option<Job> {
    match load_job(path) {
        Ok(job) => Some(job),
        Err(problems) => {
            eprintln!("{problems}");
            None
        }
    }
}

/// `jobs/demo.toml` from the working directory, else from the source tree it was built from.
fn locate_demo_job(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if built_from.exists() {
        built_from
    } else {
        path.to_path_buf()
    }
}

async fn run(job: &Job, opts: RunOptions, fail_on_drift: bool) -> ExitCode {
    match runner::run_job(job, opts).await {
        Ok(outcome) => {
            println!("{}", outcome.render_summary());
            if fail_on_drift && outcome.drift_total() > 0 {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: job {:?} failed: {e:#}", job.name);
            ExitCode::from(1)
        }
    }
}

async fn serve_sandbox(listen: SocketAddr, fixtures: &Path, rate_limit: u32) -> ExitCode {
    let dataset = match Dataset::load(fixtures) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = SandboxConfig {
        listen,
        rate_limit_per_sec: rate_limit,
        ..SandboxConfig::default()
    };
    let sandbox = match Sandbox::start(config, dataset).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the sandbox on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    let creds = sandbox.credentials();
    println!("SpotDraft API: {}", sandbox.spotdraft_base_url());
    println!("  client-id:     {}", creds.client_id);
    println!("  client-secret: {}", creds.client_secret);
    println!("ERP API:       {}", sandbox.erp_base_url());
    println!("  bearer token:  {}", creds.erp_token);
    println!(
        "Faults:        GET/PUT {}_sandbox/faults",
        sandbox.erp_base_url().trim_end_matches("erp/")
    );
    println!("(sandbox credentials are public test values; Ctrl-C stops)");
    let _ = tokio::signal::ctrl_c().await;
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}
